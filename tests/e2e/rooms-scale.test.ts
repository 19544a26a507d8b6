/**
 * Joining at scale, end to end: bounded join answers and member pages in a
 * room of 2,000, coalesced presence with counts only above the roster size,
 * capacity under a burst of concurrent joins on two nodes, the rejoin fast
 * path, and aggregated membership entries.
 */
import { sql } from 'kysely';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { FeedEntry, MembersEntryPayload, RoomJoined, RoomPresence, RoomView, SessionResponse } from '../../shared/schemas.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { RAISED_USER_LIMITS, createTestContext, type TestContext } from '../support/context.ts';
import { codeOf, ok, until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('rooms/scale');
const ROSTER_MAX = 5;
const BATCH_MS = 1000;
const ENV = {
  AUTH_RATE_REGISTER_IP: '1000/60',
  AUTH_RATE_GUEST_IP: '10000/60',
  SOCKET_EVENTS_PER_SECOND: '1000',
  ...RAISED_USER_LIMITS,
  ROOM_MAX_MEMBERS_CAP: '2000',
  PIN_GUESS_RATE_IP: '100000/300',
  PRESENCE_BATCH_MS: String(BATCH_MS),
  ROOM_ROSTER_BROADCAST_MAX: String(ROSTER_MAX),
};

let ctx: TestContext;
let a: TestServer;
let b: TestServer;
const sockets: TestSocket[] = [];

async function open(server: TestServer, token: string): Promise<TestSocket> {
  const socket = await connect(server.url, { token });
  sockets.push(socket);
  return socket;
}

async function hostRoom(server: TestServer, title: string, maxMembers: number): Promise<{ host: SessionResponse; socket: TestSocket; room: RoomView }> {
  const host = await signUp(server.url, { displayName: `Host of ${title}` });
  const socket = await open(server, host.accessToken);
  const { room } = ok(await request(socket, 'room:create', { title, maxMembers }));
  return { host, socket, room };
}

/** `count` members added straight into PostgreSQL, in join order after everyone so far (a big room without thousands of sockets). */
async function seedMembers(roomId: string, count: number): Promise<string[]> {
  const db = ctx.db();
  const { rows } = await sql<{ id: string }>`
    insert into users (display_name, kind) select 'Seed ' || g, 'guest' from generate_series(1, ${count}) g returning id`.execute(db);
  const ids = rows.map((r) => r.id);
  await sql`insert into room_members (room_id, user_id, role) select ${roomId}::uuid, u, 'member' from unnest(${ids}::uuid[]) with ordinality as t(u, n) order by n`.execute(db);
  await sql`update rooms set member_count = member_count + ${count} where id = ${roomId}::uuid`.execute(db);
  return ids;
}

/** Every `event` payload `socket` receives from now on. */
function collect<T>(socket: TestSocket, event: 'room:presence' | 'feed:entry'): T[] {
  const seen: T[] = [];
  socket.on(event, ((payload: T) => seen.push(payload)) as never);
  return seen;
}

async function feedLength(roomId: string): Promise<number> {
  return ctx.redis().xlen(`${ctx.keyPrefix}room:{${roomId}}:feed`);
}

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  [a, b] = await Promise.all([startTestServer({ ...ctx.env, ...ENV }), startTestServer({ ...ctx.env, ...ENV })]);
});
test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled([a?.stop(), b?.stop()]);
  await ctx.cleanup();
});

test('a join answer in a room of 2,000 carries one page of members, the counts and a cursor, and is no bigger than in a room of 120', async () => {
  const answerIn = async (size: number): Promise<{ joined: RoomJoined; bytes: number; seeded: string[] }> => {
    const { room } = await hostRoom(a, `Size ${size}`, size);
    const seeded = await seedMembers(room.id, size - 2);
    const guest = await signInGuest(b.url, `Last of ${size}`);
    const joined = ok(await request(await open(b, guest.accessToken), 'room:join', { pin: room.pin }));
    return { joined, bytes: Buffer.byteLength(JSON.stringify(joined)), seeded };
  };
  const small = await answerIn(120);
  const big = await answerIn(2000);
  assert.is(big.joined.memberCount, 2000);
  assert.is(big.joined.rejoined, false);
  assert.is(big.joined.members!.length, 100, 'one page of members');
  assert.ok(big.joined.nextAfter, 'a cursor to the rest');
  assert.is(big.joined.online, 2, 'the host and the joiner are online');
  assert.is(small.joined.members!.length, 100);
  console.log(`  join answer: ${small.bytes} bytes in a room of 120, ${big.bytes} bytes in a room of 2,000`);
  assert.ok(big.bytes < 16 * 1024, `answer of ${big.bytes} bytes`);
  assert.ok(big.bytes <= small.bytes + 256, `answer grows with the room: ${small.bytes} → ${big.bytes} bytes`);
});

test('room:members pages through every member of a room of 2,000 exactly once, in join order, for members and the host', async () => {
  const { host, socket: hostSocket, room } = await hostRoom(a, 'Paging', 2000);
  const seeded = await seedMembers(room.id, 1998);
  const guest = await signInGuest(b.url, 'Pager');
  const member = await open(b, guest.accessToken);
  ok(await request(member, 'room:join', { pin: room.pin }));
  const expected = [host.user.id, ...seeded, guest.user.id];

  for (const [who, socket, limit] of [
    ['member', member, 100],
    ['host', hostSocket, 37],
  ] as const) {
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    do {
      const page = ok(await request(socket, 'room:members', after ? { roomId: room.id, after, limit } : { roomId: room.id, limit }));
      assert.ok(page.members.length <= limit);
      seen.push(...page.members.map((m) => m.userId));
      after = page.nextAfter;
      pages++;
    } while (after && pages < 200);
    assert.is(seen.length, 2000, `${who}: every member`);
    assert.is(new Set(seen).size, 2000, `${who}: each once`);
    assert.equal(seen, expected, `${who}: in join order`);
  }
  const outsider = await open(a, (await signInGuest(a.url, 'Outsider')).accessToken);
  assert.is(codeOf(await request(outsider, 'room:members', { roomId: room.id })), 'forbidden');
  assert.is(codeOf(await request(member, 'room:members', { roomId: room.id, limit: 101 })), 'bad_request');
});

test('presence is coalesced per window; above the roster size members get counts only while the host sees every change', async () => {
  const { socket: hostSocket, room } = await hostRoom(a, 'Presence', 100);
  const watcher = await open(b, (await signInGuest(b.url, 'Watcher')).accessToken);
  ok(await request(watcher, 'room:join', { pin: room.pin }));
  const atHost = collect<RoomPresence>(hostSocket, 'room:presence');
  const atWatcher = collect<RoomPresence>(watcher, 'room:presence');

  const guests = await Promise.all(Array.from({ length: 12 }, (_, i) => signInGuest(a.url, `Crowd ${i}`)));
  const crowd = await Promise.all(guests.map((g, i) => open(i < 6 ? a : i % 2 ? a : b, g.accessToken)));
  const ids = guests.map((g) => g.user.id);
  const onlineAtHost = () => new Set(atHost.flatMap((p) => p.changes.filter((c) => c.online).map((c) => c.userId)));

  // Six joins one after the other on one node, well within one window: a few messages, not six.
  for (const s of crowd.slice(0, 6)) ok(await request(s, 'room:join', { pin: room.pin }));
  await until(() => ids.slice(0, 6).every((id) => onlineAtHost().has(id)), 'the host seeing the first six online');
  const carrying = atHost.filter((p) => p.changes.some((c) => ids.slice(0, 6).includes(c.userId)));
  assert.ok(carrying.length < 6, `6 joins reached the host in ${carrying.length} messages`);
  assert.ok(carrying.some((p) => p.changes.length >= 2), 'one message carries several changes');

  // Six more at once, from both nodes: above the roster size.
  await Promise.all(crowd.slice(6).map((s) => request(s, 'room:join', { pin: room.pin }).then(ok)));
  await until(() => ids.every((id) => onlineAtHost().has(id)), 'the host seeing every joiner online');
  await until(() => atWatcher.some((p) => p.online === 14), 'the watcher getting the count of 14');
  for (const p of atWatcher) {
    if (p.online > ROSTER_MAX) assert.is(p.changes.length, 0, `counts only at ${p.online} online`);
  }
  assert.ok(atWatcher.every((p) => p.roomId === room.id));

  // Leaving: the host still sees each one go.
  const leavers = guests.slice(0, 3);
  await Promise.all(crowd.slice(0, 3).map((s) => request(s, 'room:leave', { roomId: room.id }).then(ok)));
  await until(() => leavers.every((g) => atHost.some((p) => p.changes.some((c) => c.userId === g.user.id && !c.online))), 'the host seeing the leavers go offline');
  await until(() => atWatcher.at(-1)?.online === 11, 'the watcher getting the count of 11');
});

test('capacity holds under 200 concurrent joins on two nodes into a room with 100 seats', async () => {
  const { room } = await hostRoom(a, 'Capacity', 100);
  const guests = await Promise.all(Array.from({ length: 200 }, (_, i) => signInGuest(i % 2 ? a.url : b.url, `Rush ${i}`)));
  const crowd = await Promise.all(guests.map((g, i) => open(i % 2 ? a : b, g.accessToken)));
  const answers = await Promise.all(crowd.map((s) => request(s, 'room:join', { pin: room.pin }, 30_000)));
  const codes = answers.map(codeOf);
  assert.is(codes.filter((c) => c === 'ok').length, 99, 'the host holds the 100th seat');
  assert.is(codes.filter((c) => c === 'room_full').length, 101);
  const { rows } = await sql<{ active: string; counted: number }>`
    select (select count(*) from room_members where room_id = ${room.id}::uuid and left_at is null) as active,
           (select member_count from rooms where id = ${room.id}::uuid) as counted`.execute(ctx.db());
  assert.equal([Number(rows[0]!.active), rows[0]!.counted], [100, 100]);
});

test('a rejoin adds no feed entry, reads no member list and needs no PIN-guess accounting', async () => {
  const { socket: hostSocket, room } = await hostRoom(a, 'Rejoin', 20);
  const other = await hostRoom(a, 'Elsewhere', 20);
  ok(await request(hostSocket, 'feed:subscribe', { roomId: room.id }));
  const guest = await signInGuest(b.url, 'Returner');
  const first = await open(b, guest.accessToken);
  const joined = ok(await request(first, 'room:join', { pin: room.pin }));
  assert.is(joined.rejoined, false);
  await until(async () => (await feedLength(room.id)) === 2, 'room.created and member.joined in the feed');
  const atHost = collect<FeedEntry>(hostSocket, 'feed:entry');

  // Use up this user's wrong-PIN allowance at this address (PIN_GUESS_RATE_USER_IP, 10 per 300 s): new joins are refused from now on.
  let wrong = String((Number(room.pin) + 1) % 1_000_000).padStart(6, '0');
  for (let i = 0; i < 12; i++) {
    while (wrong === room.pin || wrong === other.room.pin) wrong = String((Number(wrong) + 1) % 1_000_000).padStart(6, '0');
    await request(first, 'room:join', { pin: wrong });
  }
  assert.is(codeOf(await request(first, 'room:join', { pin: other.room.pin })), 'rate_limited', 'a new join is blocked');

  // Another tab, then a reconnect on the other node: both back in, as rejoins.
  for (const server of [b, a]) {
    const tab = await open(server, guest.accessToken);
    const again = ok(await request(tab, 'room:join', { pin: room.pin }));
    assert.is(again.rejoined, true);
    assert.is(again.role, 'member');
    assert.is(again.members, undefined, 'no member list on a rejoin');
    assert.is(again.memberCount, 2);
    assert.ok(again.feed && again.feed.lastId === joined.feed!.lastId, 'the feed did not move');
  }
  const published = ok(await request(hostSocket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text: 'after' }, clientMsgId: 'after-rejoin' }));
  await until(() => atHost.some((e) => e.id === published.id), 'the host receiving its own entry');
  assert.equal(atHost.map((e) => e.type), ['chat.message'], 'no entry between the rejoins and the chat');
  assert.is(await feedLength(room.id), 3);
});

test('a kicked member cannot come back through the rejoin path, even when their rejoin hint survived', async () => {
  const { socket: hostSocket, room } = await hostRoom(a, 'Kicks', 20);
  const guest = await signInGuest(b.url, 'Kicked');
  const socket = await open(b, guest.accessToken);
  ok(await request(socket, 'room:join', { pin: room.pin }));
  const hint = `${ctx.keyPrefix}user:{${guest.user.id}}:rooms`;
  assert.is(await ctx.redis().sismember(hint, room.id), 1, 'a join writes the hint');
  ok(await request(hostSocket, 'room:kick', { roomId: room.id, userId: guest.user.id, banSeconds: 60 }));
  assert.is(await ctx.redis().sismember(hint, room.id), 0, 'a kick clears the hint');

  await ctx.redis().sadd(hint, room.id); // as if clearing it had failed
  const back = await open(a, guest.accessToken);
  assert.is(codeOf(await request(back, 'room:join', { pin: room.pin })), 'banned');

  // Kicked without a ban: they may come back, as a new join (not a rejoin).
  ok(await request(hostSocket, 'room:kick', { roomId: room.id, userId: guest.user.id }));
  const unbanned = await signInGuest(a.url, 'Unbanned');
  const s2 = await open(a, unbanned.accessToken);
  ok(await request(s2, 'room:join', { pin: room.pin }));
  ok(await request(hostSocket, 'room:kick', { roomId: room.id, userId: unbanned.user.id }));
  await ctx.redis().sadd(`${ctx.keyPrefix}user:{${unbanned.user.id}}:rooms`, room.id);
  const again = ok(await request(s2, 'room:join', { pin: room.pin }));
  assert.is(again.rejoined, false);
  assert.ok(again.members, 'a new join carries the member page');
});

test('above the roster size joins and leaves become aggregated feed entries, stored and archived', async () => {
  const { socket: hostSocket, room } = await hostRoom(a, 'Crowd', 50);
  ok(await request(hostSocket, 'feed:subscribe', { roomId: room.id }));
  const entries = collect<FeedEntry>(hostSocket, 'feed:entry');
  const guests = await Promise.all(Array.from({ length: 14 }, (_, i) => signInGuest(b.url, `Agg ${i}`)));
  const crowd: TestSocket[] = [];
  for (const g of guests) {
    const s = await open(b, g.accessToken);
    crowd.push(s);
    ok(await request(s, 'room:join', { pin: room.pin }));
  }
  await Promise.all(crowd.slice(10).map((s) => request(s, 'room:leave', { roomId: room.id }).then(ok)));

  const joinedOne = () => entries.filter((e) => e.type === 'member.joined');
  const joinedMany = () => entries.filter((e) => e.type === 'members.joined');
  const leftMany = () => entries.filter((e) => e.type === 'members.left');
  const sum = (list: FeedEntry[]) => list.reduce((n, e) => n + (e.payload as unknown as MembersEntryPayload).count, 0);
  // Rooms of up to ROSTER_MAX members: one entry per join (the host is the first member).
  await until(() => sum(joinedMany()) === 14 - (ROSTER_MAX - 1) && sum(leftMany()) === 4, 'the aggregated entries');
  assert.is(joinedOne().length, ROSTER_MAX - 1);
  const named = joinedMany().flatMap((e) => (e.payload as unknown as MembersEntryPayload).users.map((u) => u.name));
  assert.equal(new Set(named), new Set(guests.slice(ROSTER_MAX - 1).map((g) => g.user.name)));
  assert.ok(joinedMany().every((e) => e.actor === null));

  await until(async () => {
    const { rows } = await sql<{ n: string }>`select count(*) as n from activity where room_id = ${room.id}::uuid and type in ('members.joined', 'members.left')`.execute(ctx.db());
    return Number(rows[0]!.n) === joinedMany().length + leftMany().length;
  }, 'the aggregated entries archived');
});

test.run();
