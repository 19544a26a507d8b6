import { randomBytes, randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ack } from '../../shared/errors.ts';
import type { FeedEntry, RoomPresence, RoomView, UserView } from '../../shared/schemas.ts';
import { postJson, signInGuest, signUp } from '../support/auth.ts';
import { connect, flushed, nextEvent, request, signalUntilHeard, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('rooms/e2e');
let ctx: TestContext;
let a: TestServer;
let b: TestServer;
const sockets: TestSocket[] = [];

const API_KEY = randomBytes(24).toString('hex');
const ENV = {
  AUTH_RATE_REGISTER_IP: '1000/60',
  AUTH_RATE_GUEST_IP: '1000/60',
  SOCKET_EVENTS_PER_SECOND: '40',
  ROOM_MAX_MEMBERS_CAP: '50',
  ROOM_MAX_MEMBERS_DEFAULT: '20',
  PIN_QUARANTINE_SECONDS: '300',
  FEED_API_KEY: API_KEY,
};

interface Client {
  socket: TestSocket;
  user: UserView;
}

async function client(server: TestServer, kind: 'guest' | 'registered', name: string): Promise<Client> {
  const session = kind === 'guest' ? await signInGuest(server.url, name) : await signUp(server.url, { displayName: name });
  const socket = await connect(server.url, { token: session.accessToken });
  sockets.push(socket);
  return { socket, user: session.user };
}

function ok<T>(ack: Ack<T>): T {
  if (!ack.ok) throw new Error(`expected ok, got ${JSON.stringify(ack.error)}`);
  return ack.data;
}
function code(ack: Ack<unknown>): string {
  if (ack.ok) throw new Error(`expected an error, got ${JSON.stringify(ack.data)}`);
  return ack.error.code;
}

async function createRoom(host: Client, title = 'Quiz night', maxMembers?: number): Promise<RoomView> {
  return ok(await request(host.socket, 'room:create', maxMembers === undefined ? { title } : { title, maxMembers })).room;
}

/** Every `room:signal` type `socket` receives from now on. */
function signalsAt(socket: TestSocket): string[] {
  const types: string[] = [];
  socket.on('room:signal', (p) => types.push(p.type));
  return types;
}

test.before(async () => {
  ctx = createTestContext();
  // Created up front: two servers starting at once would race to create the database.
  await ctx.migrate();
  [a, b] = await Promise.all([startTestServer({ ...ctx.env, ...ENV }), startTestServer({ ...ctx.env, ...ENV })]);
});
test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled([a?.stop(), b?.stop()]);
  await ctx.cleanup();
});

test('a registered user creates a room with a PIN; a guest gets forbidden; bad payloads get bad_request with issues', async () => {
  const host = await client(a, 'registered', 'Hana');
  const room = await createRoom(host);
  assert.match(room.pin, /^\d{6}$/);
  assert.is(room.status, 'lobby');
  assert.is(room.locked, false);
  assert.is(room.hostId, host.user.id);
  assert.is(await ctx.redis().get(`${ctx.keyPrefix}pin:${room.pin}`), room.id);

  const guest = await client(a, 'guest', 'Gil');
  const refused = await request(guest.socket, 'room:create', { title: 'Mine' });
  assert.is(code(refused), 'forbidden');

  const tooLong = await request(host.socket, 'room:create', { title: 'x'.repeat(81) });
  assert.is(code(tooLong), 'bad_request');
  assert.ok(!tooLong.ok && tooLong.error.issues?.some((i) => i.startsWith('title:')), JSON.stringify(tooLong));
  const overCap = await request(host.socket, 'room:create', { title: 'Big', maxMembers: 51 });
  assert.is(code(overCap), 'bad_request');
  const extra = await request(host.socket, 'room:create', { title: 'Extra', owner: 'me' } as never);
  assert.is(code(extra), 'bad_request');
  const badPin = await request(guest.socket, 'room:join', { pin: '12ab' });
  assert.is(code(badPin), 'bad_request');
});

test('GET /rooms/pin/:pin answers the room, and the same 404 for a PIN that never existed and one whose room ended', async () => {
  const host = await client(a, 'registered', 'Lou');
  const room = await createRoom(host, 'Lookup');
  const found = await fetch(`${b.url}/rooms/pin/${room.pin}`);
  assert.is(found.status, 200);
  assert.equal(await found.json(), { roomId: room.id, title: 'Lookup', status: 'lobby', locked: false, full: false });

  let never = String((Number(room.pin) + 1) % 1_000_000).padStart(6, '0');
  while (await ctx.redis().exists(`${ctx.keyPrefix}pin:${never}`)) never = String((Number(never) + 1) % 1_000_000).padStart(6, '0');
  const missing = await fetch(`${a.url}/rooms/pin/${never}`);
  ok(await request(host.socket, 'room:end', { roomId: room.id }));
  const ended = await fetch(`${a.url}/rooms/pin/${room.pin}`);
  assert.is(missing.status, 404);
  assert.is(ended.status, 404);
  assert.equal(await ended.json(), await missing.json());
  const malformed = await fetch(`${a.url}/rooms/pin/12x`);
  assert.is(malformed.status, 400);
});

test('join answers room, members and role; presence, start, lock and signals reach members on both nodes', async () => {
  const host = await client(a, 'registered', 'Host');
  const room = await createRoom(host, 'Signals', 3);
  const ann = await client(b, 'guest', 'Ann');
  const seen = nextEvent(host.socket, 'room:presence', (p) => p.changes.some((c) => c.userId === ann.user.id));
  const joined = ok(await request(ann.socket, 'room:join', { pin: room.pin }));
  assert.is(joined.role, 'member');
  assert.is(joined.room.id, room.id);
  assert.equal(
    joined.members!.map((m) => [m.userId, m.role, m.online]),
    [
      [host.user.id, 'host', true],
      [ann.user.id, 'member', true],
    ],
  );
  const presence: RoomPresence = await seen;
  assert.equal(presence.changes, [{ userId: ann.user.id, name: 'Ann', role: 'member', online: true }]);

  // Host controls are the host's.
  assert.is(code(await request(ann.socket, 'room:start', { roomId: room.id })), 'forbidden');
  assert.is(code(await request(ann.socket, 'room:lock', { roomId: room.id, locked: true })), 'forbidden');
  assert.is(code(await request(ann.socket, 'room:end', { roomId: room.id })), 'forbidden');
  assert.is(code(await request(ann.socket, 'room:kick', { roomId: room.id, userId: host.user.id })), 'forbidden');

  const updated = nextEvent(ann.socket, 'room:updated');
  const started = ok(await request(host.socket, 'room:start', { roomId: room.id }));
  assert.is(started.room.status, 'live');
  assert.is((await updated).room.status, 'live');
  assert.is(code(await request(host.socket, 'room:start', { roomId: room.id })), 'conflict');

  // Signals: relayed to the others (across nodes), not stored, not echoed.
  // Once Ann (on the other node) has it, the sender's node has broadcast it; a
  // round trip on the sender then brings in an echo, if any, before its answer.
  const atHost = signalsAt(host.socket);
  const [got] = await signalUntilHeard(host.socket, [ann.socket], { roomId: room.id, type: 'cursor', payload: { x: 1, y: 2 } });
  assert.equal(got, { roomId: room.id, from: host.user.id, type: 'cursor', payload: { x: 1, y: 2 } });
  await flushed(host.socket);
  assert.equal(atHost, [], 'the sender does not get its own signal');
  const tooBig = nextEvent(host.socket, 'server:error');
  host.socket.emit('room:signal', { roomId: room.id, type: 'cursor', payload: { blob: 'x'.repeat(4200) } });
  const bigError = await tooBig;
  assert.is(bigError.event, 'room:signal');
  assert.is(bigError.error.code, 'bad_request');
  const outsider = await client(a, 'guest', 'Out');
  const notMember = nextEvent(outsider.socket, 'server:error');
  outsider.socket.emit('room:signal', { roomId: room.id, type: 'cursor', payload: {} });
  assert.is((await notMember).error.code, 'forbidden');

  // Lock: no new members, with the code; unlock lets them in; then full.
  const locked = ok(await request(host.socket, 'room:lock', { roomId: room.id, locked: true }));
  assert.is(locked.room.locked, true);
  assert.is(code(await request(outsider.socket, 'room:join', { pin: room.pin })), 'room_locked');
  const lookup = (await (await fetch(`${a.url}/rooms/pin/${room.pin}`)).json()) as { locked: boolean; status: string };
  assert.equal([lookup.locked, lookup.status], [true, 'live']);
  ok(await request(host.socket, 'room:lock', { roomId: room.id, locked: false }));
  ok(await request(outsider.socket, 'room:join', { pin: room.pin }));
  const late = await client(b, 'guest', 'Late');
  assert.is(code(await request(late.socket, 'room:join', { pin: room.pin })), 'room_full');

  // Leave: the others see the member go offline; the seat is free again.
  const gone = nextEvent(host.socket, 'room:presence', (p) => p.changes.some((c) => c.userId === outsider.user.id && !c.online));
  ok(await request(outsider.socket, 'room:leave', { roomId: room.id }));
  await gone;
  ok(await request(late.socket, 'room:join', { pin: room.pin }));
});

test('kick takes the user out on every node, enforces the ban on rejoin, and a kick without a ban lets them back', async () => {
  const host = await client(a, 'registered', 'Kay');
  const room = await createRoom(host, 'Kicks');
  const session = await signInGuest(b.url, 'Moe');
  const onA = await connect(a.url, { token: session.accessToken });
  const onB = await connect(b.url, { token: session.accessToken });
  sockets.push(onA, onB);
  const moe = session.user;
  ok(await request(onA, 'room:join', { pin: room.pin }));
  ok(await request(onB, 'room:join', { pin: room.pin }));
  // Members who stay, one on each node: they witness the room's broadcasts after the kick.
  const stayA = await client(a, 'guest', 'Stay A');
  const stayB = await client(b, 'guest', 'Stay B');
  ok(await request(stayA.socket, 'room:join', { pin: room.pin }));
  ok(await request(stayB.socket, 'room:join', { pin: room.pin }));

  const kickedA = nextEvent(onA, 'room:kicked');
  const kickedB = nextEvent(onB, 'room:kicked');
  const offline = nextEvent(host.socket, 'room:presence', (p) => p.changes.some((c) => c.userId === moe.id && !c.online));
  ok(await request(host.socket, 'room:kick', { roomId: room.id, userId: moe.id, banSeconds: 120 }));
  const [ka, kb] = await Promise.all([kickedA, kickedB]);
  assert.is(ka.roomId, room.id);
  assert.ok(ka.bannedUntil && Date.parse(ka.bannedUntil) > Date.now() + 100_000);
  assert.equal(kb, ka);
  await offline;

  // Out of the room's broadcast group on both nodes: once the witnesses on both
  // nodes have the host's signal, a round trip on each kicked socket brings in
  // anything its node sent it.
  const atA = signalsAt(onA);
  const atB = signalsAt(onB);
  await signalUntilHeard(host.socket, [stayA.socket, stayB.socket], { roomId: room.id, type: 'ping', payload: {} });
  await Promise.all([flushed(onA), flushed(onB)]);
  assert.equal(atA, [], 'the socket on node A is out of the room');
  assert.equal(atB, [], 'the socket on node B is out of the room');
  const refused = nextEvent(onB, 'server:error');
  onB.emit('room:signal', { roomId: room.id, type: 'ping', payload: {} });
  assert.is((await refused).error.code, 'forbidden');

  const banned = await request(onA, 'room:join', { pin: room.pin });
  assert.is(code(banned), 'banned');
  assert.ok(!banned.ok && banned.error.retryAfterMs! > 100_000 && banned.error.retryable === true);

  // Without a ban, the kicked user may come back.
  const zoe = await client(b, 'guest', 'Zoe');
  ok(await request(zoe.socket, 'room:join', { pin: room.pin }));
  const kicked = nextEvent(zoe.socket, 'room:kicked');
  ok(await request(host.socket, 'room:kick', { roomId: room.id, userId: zoe.user.id }));
  assert.equal(await kicked, { roomId: room.id });
  assert.is(ok(await request(zoe.socket, 'room:join', { pin: room.pin })).role, 'member');
  assert.is(code(await request(host.socket, 'room:kick', { roomId: room.id, userId: host.user.id })), 'conflict');
});

test("end notifies everyone, empties the room and releases the PIN into quarantine, never touching another room's PIN", async () => {
  const host = await client(a, 'registered', 'End');
  const room = await createRoom(host, 'Ending');
  const pal = await client(b, 'guest', 'Pal');
  ok(await request(pal.socket, 'room:join', { pin: room.pin }));
  const endedPal = nextEvent(pal.socket, 'room:ended');
  const endedHost = nextEvent(host.socket, 'room:ended');
  ok(await request(host.socket, 'room:end', { roomId: room.id }));
  assert.equal(await endedPal, { roomId: room.id, reason: 'host_ended' });
  assert.equal(await endedHost, { roomId: room.id, reason: 'host_ended' });
  const key = `${ctx.keyPrefix}pin:${room.pin}`;
  assert.is(await ctx.redis().get(key), `ended:${room.id}`);
  const ttl = await ctx.redis().ttl(key);
  assert.ok(ttl > 0 && ttl <= 300, `quarantine ttl ${ttl}`);
  assert.is(code(await request(pal.socket, 'room:join', { pin: room.pin })), 'room_not_found');
  assert.is(code(await request(host.socket, 'room:lock', { roomId: room.id, locked: true })), 'conflict');
  const members = await ctx.db().selectFrom('room_members').select('user_id').where('room_id', '=', room.id).where('left_at', 'is', null).execute();
  assert.is(members.length, 0, 'the room is empty');

  // A PIN that (after its claim expired) another room claimed is never released by the old room.
  const second = await createRoom(host, 'Second');
  const secondKey = `${ctx.keyPrefix}pin:${second.pin}`;
  await ctx.redis().set(secondKey, 'another-room', 'KEEPTTL');
  ok(await request(host.socket, 'room:end', { roomId: second.id }));
  assert.is(await ctx.redis().get(secondKey), 'another-room');
});

test('a burst of events from one socket is held to SOCKET_EVENTS_PER_SECOND per one-second window; the rest get rate_limited', async () => {
  // Every window of the socket's (and its new user's) limits starts after this.
  const startedAt = Date.now();
  const host = await client(a, 'registered', 'Burst');
  const room = await createRoom(host, 'Burst');
  const perSecond = Number(ENV.SOCKET_EVENTS_PER_SECOND);
  const answers = await Promise.all(Array.from({ length: 3 * perSecond }, () => request(host.socket, 'room:lock', { roomId: room.id, locked: false }, 15_000)));
  const span = Date.now() - startedAt;
  const served = answers.filter((x) => x.ok).length;
  const limited = answers.filter((x) => !x.ok && x.error.code === 'rate_limited');
  // The limiter counts one-second windows, each opened by an event at least a
  // second after the previous one opened: everything since `startedAt` fits in
  // at most floor(span / 1000) + 1 of them (the first also charged with the room:create).
  const windows = Math.floor(span / 1000) + 1;
  assert.ok(served <= perSecond * windows, `${served} served in ${windows} window(s) of ${perSecond}`);
  assert.ok(served >= 1, 'the first events are served');
  assert.is(served + limited.length, answers.length, 'every other event is refused with rate_limited');
  assert.ok(limited.every((x) => !x.ok && x.error.retryAfterMs! > 0 && x.error.retryAfterMs! <= 1000), 'each refusal says when to retry, within the window');
});

/** A member of `room` on `server`, subscribed to its feed, collecting the room's entries. */
async function follower(server: TestServer, room: RoomView, name: string) {
  const member = await client(server, 'guest', name);
  const entries: FeedEntry[] = [];
  member.socket.on('feed:entry', (e) => e.roomId === room.id && entries.push(e));
  ok(await request(member.socket, 'room:join', { pin: room.pin }));
  ok(await request(member.socket, 'feed:subscribe', { roomId: room.id }));
  return { ...member, entries, texts: () => entries.filter((e) => e.type === 'chat.message').map((e) => String(e.payload.text)) };
}

test('no feed entry reaches a connection after its member was kicked or left, on either node', async () => {
  const host = await client(a, 'registered', 'Feed host');
  const room = await createRoom(host, 'Feed membership');
  // The kicked and the leaving members sit on both nodes, next to a member who stays (the witness of that node's delivery).
  const [kickedA, leaverA, stayA] = [await follower(a, room, 'Kicked A'), await follower(a, room, 'Leaver A'), await follower(a, room, 'Stay A')];
  const [kickedB, leaverB, stayB] = [await follower(b, room, 'Kicked B'), await follower(b, room, 'Leaver B'), await follower(b, room, 'Stay B')];
  const everyone = [kickedA, leaverA, stayA, kickedB, leaverB, stayB];
  const say = async (text: string) => ok(await request(host.socket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text }, clientMsgId: randomUUID() }));
  await say('before');
  await until(() => everyone.every((m) => m.texts().includes('before')), 'everyone to get the first entry');

  for (const kicked of [kickedA, kickedB]) {
    const told = nextEvent(kicked.socket, 'room:kicked');
    ok(await request(host.socket, 'room:kick', { roomId: room.id, userId: kicked.user.id }));
    await told;
  }
  for (const leaver of [leaverA, leaverB]) ok(await request(leaver.socket, 'room:leave', { roomId: room.id }));

  // Two entries after that: once a node's witness has both, that node's fan-out
  // of them is done; a round trip on each removed socket brings in what it got.
  await say('after 1');
  await say('after 2');
  await until(() => [stayA, stayB].every((m) => m.texts().includes('after 2')), 'the witnesses on both nodes to get the later entries');
  const removed = [kickedA, kickedB, leaverA, leaverB];
  await Promise.all(removed.map((m) => flushed(m.socket)));
  for (const m of removed) {
    assert.equal(m.texts().filter((t) => t.startsWith('after')), [], `${m.user.name} got no entry after being removed`);
    const last = m.entries.findIndex((e) => (e.type === 'member.kicked' || e.type === 'member.left') && e.payload.userId === m.user.id);
    if (last >= 0) assert.is(last, m.entries.length - 1, `${m.user.name}: nothing after the entry naming them`);
  }
  assert.equal(stayA.texts(), ['before', 'after 1', 'after 2']);
});

test("the host's room:leave ends the room with host_left for every member, on both nodes", async () => {
  const host = await client(a, 'registered', 'Leaving host');
  const room = await createRoom(host, 'Host leaves');
  const members = [await follower(a, room, 'On A'), await follower(b, room, 'On B')];
  const ended = members.map((m) => nextEvent(m.socket, 'room:ended'));
  ok(await request(host.socket, 'room:leave', { roomId: room.id }));
  assert.equal(await Promise.all(ended), [
    { roomId: room.id, reason: 'host_left' },
    { roomId: room.id, reason: 'host_left' },
  ]);
  assert.is((await fetch(`${b.url}/rooms/pin/${room.pin}`)).status, 404, 'its PIN no longer resolves');
  assert.is(code(await request(members[0]!.socket, 'room:join', { pin: room.pin })), 'room_not_found');

  // Nothing more of the ended room reaches its members: a backend's publish is refused, and the last entry they hold is room.ended.
  const late = await postJson(`${a.url}/api/rooms/${room.id}/events`, { type: 'host.announcement', payload: { text: 'too late' } }, { 'x-api-key': API_KEY });
  assert.is(late.status, 404, 'no entry is added to an ended room');
  await Promise.all(members.map((m) => flushed(m.socket)));
  for (const m of members) {
    const endedAt = m.entries.findIndex((e) => e.type === 'room.ended');
    if (endedAt >= 0) assert.is(endedAt, m.entries.length - 1, `${m.user.name}: nothing after room.ended`);
    assert.not.ok(m.entries.some((e) => e.payload.text === 'too late'));
  }
});

test.run();
