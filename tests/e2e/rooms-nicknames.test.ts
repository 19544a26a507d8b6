import { randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ack } from '../../shared/errors.ts';
import type { FeedEntry, PinLookup, RoomView, UserView } from '../../shared/schemas.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('rooms/nicknames');
let ctx: TestContext;
let a: TestServer;
let b: TestServer;
const sockets: TestSocket[] = [];

const ENV = { AUTH_RATE_REGISTER_IP: '1000/60', AUTH_RATE_GUEST_IP: '1000/60', SOCKET_EVENTS_PER_SECOND: '40' };

interface Client {
  socket: TestSocket;
  user: UserView;
  token: string;
}

async function guest(server: TestServer, name: string): Promise<Client> {
  const session = await signInGuest(server.url, name);
  const socket = await connect(server.url, { token: session.accessToken });
  sockets.push(socket);
  return { socket, user: session.user, token: session.accessToken };
}

async function hostRoom(title: string): Promise<{ host: Client; room: RoomView; entries: FeedEntry[] }> {
  const session = await signUp(a.url, { displayName: `Host of ${title}` });
  const socket = await connect(a.url, { token: session.accessToken });
  sockets.push(socket);
  const host = { socket, user: session.user, token: session.accessToken };
  const room = ok(await request(socket, 'room:create', { title })).room;
  const entries: FeedEntry[] = [];
  socket.on('feed:entry', (e) => entries.push(e));
  ok(await request(socket, 'feed:subscribe', { roomId: room.id }));
  return { host, room, entries };
}

function ok<T>(ack: Ack<T>): T {
  if (!ack.ok) throw new Error(`expected ok, got ${JSON.stringify(ack.error)}`);
  return ack.data;
}
function code(ack: Ack<unknown>): string {
  if (ack.ok) throw new Error(`expected an error, got ${JSON.stringify(ack.data)}`);
  return ack.error.code;
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

test('the nickname of room:join names the member in the answer, the member list, presence and the feed', async () => {
  const { host, room, entries } = await hostRoom('Names');
  const carl = await guest(b, 'Carl');
  const seen = nextEvent(host.socket, 'room:presence', (p) => p.changes.some((c) => c.userId === carl.user.id));
  const joined = ok(await request(carl.socket, 'room:join', { pin: room.pin, nickname: '  Carla ' }));
  assert.is(joined.name, 'Carla');
  assert.equal(
    joined.members!.map((m) => m.name),
    ['Host of Names', 'Carla'],
  );
  assert.equal((await seen).changes.map((c) => c.name), ['Carla']);
  ok(await request(carl.socket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text: 'hi' }, clientMsgId: randomUUID() }));
  await until(() => entries.some((e) => e.type === 'chat.message'), 'the chat entry to reach the host');
  assert.equal(
    entries.filter((e) => e.actor?.id === carl.user.id).map((e) => [e.type, e.actor!.name]),
    [
      ['member.joined', 'Carla'],
      ['chat.message', 'Carla'],
    ],
  );
  const page = ok(await request(host.socket, 'room:members', { roomId: room.id }));
  assert.equal(page.members.find((m) => m.userId === carl.user.id)?.name, 'Carla');

  // A rejoin (a second tab) keeps the name held, whatever it asks for.
  const again = await connect(a.url, { token: carl.token });
  sockets.push(again);
  const rejoined = ok(await request(again, 'room:join', { pin: room.pin, nickname: 'Other' }));
  assert.is(rejoined.rejoined, true);
  assert.is(rejoined.name, 'Carla');
});

test('a nickname another member goes by, trimmed and in any case, answers nickname_taken; it is free again once they left', async () => {
  const { host, room } = await hostRoom('Unique');
  const ada = await guest(a, 'Ada');
  ok(await request(ada.socket, 'room:join', { pin: room.pin, nickname: 'Ada' }));
  const other = await guest(b, 'Someone');
  const taken = await request(other.socket, 'room:join', { pin: room.pin, nickname: '  aDA  ' });
  assert.is(code(taken), 'nickname_taken');
  assert.ok(!taken.ok && taken.error.retryable === false);
  // The host's name is taken too, and a display name used as the name is checked like a nickname.
  assert.is(code(await request(other.socket, 'room:join', { pin: room.pin, nickname: 'host of unique' })), 'nickname_taken');
  const twin = await guest(b, 'ADA');
  assert.is(code(await request(twin.socket, 'room:join', { pin: room.pin })), 'nickname_taken');
  // Refused joins took no seat: the member list has the host and Ada only.
  assert.equal(
    ok(await request(host.socket, 'room:members', { roomId: room.id })).members.map((m) => m.name),
    ['Host of Unique', 'Ada'],
  );
  ok(await request(ada.socket, 'room:leave', { roomId: room.id }));
  assert.is(ok(await request(other.socket, 'room:join', { pin: room.pin, nickname: 'ada' })).name, 'ada');
});

test('of many guests joining with one nickname at once, on two nodes, exactly one gets it', async () => {
  const { host, room } = await hostRoom('Race');
  const racers = await Promise.all(Array.from({ length: 8 }, (_, i) => guest(i % 2 ? a : b, `Racer ${i}`)));
  const answers = await Promise.all(racers.map((r) => request(r.socket, 'room:join', { pin: room.pin, nickname: 'Same' })));
  assert.is(answers.filter((x) => x.ok).length, 1, JSON.stringify(answers));
  assert.equal(
    answers.filter((x) => !x.ok).map(code),
    Array(7).fill('nickname_taken'),
  );
  assert.is(ok(await request(host.socket, 'room:members', { roomId: room.id })).members.length, 2);
});

test('member.kicked names whom it removed; a kick lets them back, a ban refuses them until it ends', async () => {
  const { host, room, entries } = await hostRoom('Kicks');
  const bo = await guest(b, 'Bo');
  ok(await request(bo.socket, 'room:join', { pin: room.pin, nickname: 'Bobby' }));
  const told = nextEvent(bo.socket, 'room:kicked');
  ok(await request(host.socket, 'room:kick', { roomId: room.id, userId: bo.user.id }));
  assert.equal(await told, { roomId: room.id });
  await until(() => entries.some((e) => e.type === 'member.kicked'), 'the kick entry');
  const kick = entries.find((e) => e.type === 'member.kicked')!;
  assert.equal(kick.payload, { userId: bo.user.id, name: 'Bobby', bannedUntil: null });

  // A kick is not a ban: back in, under a new nickname.
  assert.is(ok(await request(bo.socket, 'room:join', { pin: room.pin, nickname: 'Bo again' })).name, 'Bo again');
  const banned = nextEvent(bo.socket, 'room:kicked');
  ok(await request(host.socket, 'room:kick', { roomId: room.id, userId: bo.user.id, banSeconds: 600 }));
  assert.ok((await banned).bannedUntil);
  await until(() => entries.filter((e) => e.type === 'member.kicked').length === 2, 'the ban entry');
  const ban = entries.filter((e) => e.type === 'member.kicked')[1]!;
  assert.is(ban.payload.name, 'Bo again');
  assert.ok(typeof ban.payload.bannedUntil === 'string');
  assert.is(code(await request(bo.socket, 'room:join', { pin: room.pin, nickname: 'Bo again' })), 'banned');
});

test('the PIN lookup says a room is locked or full before anyone picks a nickname', async () => {
  const session = await signUp(a.url, { displayName: 'Small host' });
  const socket = await connect(a.url, { token: session.accessToken });
  sockets.push(socket);
  const room = ok(await request(socket, 'room:create', { title: 'Small', maxMembers: 2 })).room;
  const look = async () => (await fetch(`${b.url}/rooms/pin/${room.pin}`)).json() as Promise<PinLookup>;
  assert.equal(await look(), { roomId: room.id, title: 'Small', status: 'lobby', locked: false, full: false });
  ok(await request((await guest(a, 'Filler')).socket, 'room:join', { pin: room.pin }));
  assert.is((await look()).full, true);
  ok(await request(socket, 'room:lock', { roomId: room.id, locked: true }));
  assert.is((await look()).locked, true);
});

test.run();
