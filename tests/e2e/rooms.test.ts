import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ack } from '../../shared/errors.ts';
import type { RoomPresence, RoomView, UserView } from '../../shared/schemas.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('rooms/e2e');
let ctx: TestContext;
let a: TestServer;
let b: TestServer;
const sockets: TestSocket[] = [];

const ENV = {
  AUTH_RATE_REGISTER_IP: '1000/60',
  AUTH_RATE_GUEST_IP: '1000/60',
  SOCKET_EVENTS_PER_SECOND: '40',
  ROOM_MAX_MEMBERS_CAP: '50',
  ROOM_MAX_MEMBERS_DEFAULT: '20',
  PIN_QUARANTINE_SECONDS: '300',
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

/** Resolve once no `event` arrived on `socket` for `ms` (a negative check with a bounded wait). */
function silence(socket: TestSocket, event: 'room:signal' | 'room:ended' | 'room:kicked', ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const listener = () => {
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(false);
    };
    const timer = setTimeout(() => {
      socket.off(event, listener);
      resolve(true);
    }, ms);
    socket.on(event, listener);
  });
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
  assert.equal(await found.json(), { roomId: room.id, title: 'Lookup', status: 'lobby', locked: false });

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
    joined.members.map((m) => [m.userId, m.role, m.online]),
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
  const got = nextEvent(ann.socket, 'room:signal');
  const noEcho = silence(host.socket, 'room:signal', 500);
  host.socket.emit('room:signal', { roomId: room.id, type: 'cursor', payload: { x: 1, y: 2 } });
  assert.equal(await got, { roomId: room.id, from: host.user.id, type: 'cursor', payload: { x: 1, y: 2 } });
  assert.ok(await noEcho, 'the sender does not get its own signal');
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

  const kickedA = nextEvent(onA, 'room:kicked');
  const kickedB = nextEvent(onB, 'room:kicked');
  const offline = nextEvent(host.socket, 'room:presence', (p) => p.changes.some((c) => c.userId === moe.id && !c.online));
  ok(await request(host.socket, 'room:kick', { roomId: room.id, userId: moe.id, banSeconds: 120 }));
  const [ka, kb] = await Promise.all([kickedA, kickedB]);
  assert.is(ka.roomId, room.id);
  assert.ok(ka.bannedUntil && Date.parse(ka.bannedUntil) > Date.now() + 100_000);
  assert.equal(kb, ka);
  await offline;

  // Out of the room's broadcast group on both nodes: host signals no longer reach either socket.
  const quietA = silence(onA, 'room:signal', 700);
  const quietB = silence(onB, 'room:signal', 700);
  host.socket.emit('room:signal', { roomId: room.id, type: 'ping', payload: {} });
  assert.ok(await quietA, 'socket on node A still in the room');
  assert.ok(await quietB, 'socket on node B still in the room');
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

test('a burst of events from one socket is refused with rate_limited', async () => {
  const host = await client(a, 'registered', 'Burst');
  const room = await createRoom(host, 'Burst');
  const answers = await Promise.all(Array.from({ length: 120 }, () => request(host.socket, 'room:lock', { roomId: room.id, locked: false }, 15_000)));
  const limited = answers.filter((x) => !x.ok && x.error.code === 'rate_limited');
  assert.ok(limited.length > 0, 'some events are refused');
  assert.ok(answers.filter((x) => x.ok).length <= 80, 'at most about the configured rate got through');
  assert.ok(limited.every((x) => !x.ok && x.error.retryAfterMs! > 0));
});

test.run();
