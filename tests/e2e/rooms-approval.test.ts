/**
 * Approval mode (a waiting room), against two real nodes: the host on node A,
 * joiners on node B. A ban binds a user; a banned guest who comes back as a
 * fresh guest (same address, same name) is a new user, whom only approval
 * mode stops: they wait, with no access to the room, until the host admits.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { RoomWaitingNotice } from '../../shared/schemas.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { codeOf, ok, until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('rooms/approval');
let ctx: TestContext;
let a: TestServer;
let b: TestServer;
const sockets: TestSocket[] = [];
const track = (s: TestSocket) => (sockets.push(s), s);

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  const env = { ...ctx.env, AUTH_RATE_REGISTER_IP: '1000/60', ROOM_WAITING_MAX: '3' };
  [a, b] = await Promise.all([startTestServer(env), startTestServer(env)]);
});

test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled([a?.stop(), b?.stop()]);
  await ctx.cleanup();
});

async function hostRoom(approval: boolean) {
  const owner = await signUp(a.url);
  const host = track(await connect(a.url, { token: owner.accessToken }));
  const { room } = ok(await request(host, 'room:create', { title: 'Waiting room', approval }));
  return { host, room };
}

async function guest(name: string) {
  const session = await signInGuest(b.url, name);
  return { id: session.user.id, socket: track(await connect(b.url, { token: session.accessToken })) };
}

/** Everything that would show access to the room, as error codes. */
async function access(socket: TestSocket, roomId: string): Promise<string[]> {
  return [
    codeOf(await request(socket, 'feed:subscribe', { roomId })),
    codeOf(await request(socket, 'feed:publish', { roomId, type: 'chat.message', payload: { text: 'hi' }, clientMsgId: `m-${Math.random()}` })),
    codeOf(await request(socket, 'room:members', { roomId })),
  ];
}

test('a banned guest who comes back as a new guest waits in approval mode, without access, until the host admits them', async () => {
  const { host, room } = await hostRoom(true);
  assert.is(room.approval, true);
  const waitingAtHost: RoomWaitingNotice[] = [];
  host.on('room:waiting', (n) => waitingAtHost.push(n));

  // The first identity waits, is admitted, joins, and is kicked with a ban.
  const first = await guest('Mallory');
  const firstWait = await request(first.socket, 'room:join', { pin: room.pin });
  assert.is(codeOf(firstWait), 'awaiting_approval');
  await until(() => waitingAtHost.some((n) => n.user?.userId === first.id), 'the host told of the first arrival');
  const admitted = nextEvent(first.socket, 'room:admitted', (p) => p.roomId === room.id, 15_000);
  ok(await request(host, 'room:admit', { roomId: room.id, userId: first.id }));
  await admitted;
  const joined = ok(await request(first.socket, 'room:join', { pin: room.pin }));
  assert.is(joined.room.approval, true);
  ok(await request(host, 'room:kick', { roomId: room.id, userId: first.id, banSeconds: 3600 }));
  assert.is(codeOf(await request(first.socket, 'room:join', { pin: room.pin })), 'banned', 'the ban binds the user');

  // The same person as a fresh guest: same address, same name, a new user. The ban cannot bind them; approval holds them.
  const again = await guest('Mallory');
  assert.is(codeOf(await request(again.socket, 'room:join', { pin: room.pin })), 'awaiting_approval');
  assert.is(codeOf(await request(again.socket, 'room:join', { pin: room.pin })), 'awaiting_approval', 'asking twice keeps one place');
  assert.equal(await access(again.socket, room.id), ['forbidden', 'forbidden', 'forbidden'], 'no access while waiting');
  await until(() => waitingAtHost.some((n) => n.user?.userId === again.id), 'the host told of the new arrival');
  assert.is(waitingAtHost.filter((n) => n.user?.userId === again.id).length, 1, 'one notice per arrival');

  const page = ok(await request(host, 'room:waitlist', { roomId: room.id }));
  assert.equal(page.waiting.map((w) => [w.userId, w.name]), [[again.id, 'Mallory']]);
  assert.is(page.count, 1);
  assert.is(codeOf(await request(again.socket, 'room:waitlist', { roomId: room.id })), 'forbidden', 'only the host sees the list');
  assert.is(codeOf(await request(again.socket, 'room:admit', { roomId: room.id, userId: again.id })), 'forbidden', 'a waiter cannot admit themself');

  // Denied: told so, still no access; asking again puts them back in the list.
  const denied = nextEvent(again.socket, 'room:denied', (p) => p.roomId === room.id, 15_000);
  ok(await request(host, 'room:deny', { roomId: room.id, userId: again.id }));
  await denied;
  assert.is(codeOf(await request(host, 'room:admit', { roomId: room.id, userId: again.id })), 'not_found', 'no longer waiting');
  assert.equal(await access(again.socket, room.id), ['forbidden', 'forbidden', 'forbidden']);
  assert.is(codeOf(await request(again.socket, 'room:join', { pin: room.pin })), 'awaiting_approval');

  // Admitted: now they are in, and only now.
  const welcome = nextEvent(again.socket, 'room:admitted', (p) => p.roomId === room.id, 15_000);
  ok(await request(host, 'room:admit', { roomId: room.id, userId: again.id }));
  await welcome;
  ok(await request(again.socket, 'room:join', { pin: room.pin }));
  ok(await request(again.socket, 'feed:subscribe', { roomId: room.id }));
  assert.is(ok(await request(host, 'room:waitlist', { roomId: room.id })).count, 0);
});

test('the waiting room is bounded and paged; turning approval off lets everyone waiting in', async () => {
  const { host, room } = await hostRoom(false);
  const updated = ok(await request(host, 'room:update', { roomId: room.id, approval: true }));
  assert.is(updated.room.approval, true);
  const four = await Promise.all(['W1', 'W2', 'W3', 'W4'].map(guest));
  const codes: string[] = [];
  for (const g of four) codes.push(codeOf(await request(g.socket, 'room:join', { pin: room.pin })));
  assert.equal(codes, ['awaiting_approval', 'awaiting_approval', 'awaiting_approval', 'room_full'], 'ROOM_WAITING_MAX is 3 here');

  const first = ok(await request(host, 'room:waitlist', { roomId: room.id, limit: 2 }));
  assert.equal(first.waiting.map((w) => w.name), ['W1', 'W2']);
  assert.is(first.count, 3);
  const second = ok(await request(host, 'room:waitlist', { roomId: room.id, limit: 2, after: first.nextAfter! }));
  assert.equal(second.waiting.map((w) => w.name), ['W3']);
  assert.is(second.nextAfter, undefined);

  const released = four.slice(0, 3).map((g) => nextEvent(g.socket, 'room:admitted', (p) => p.roomId === room.id, 15_000));
  ok(await request(host, 'room:update', { roomId: room.id, approval: false }));
  await Promise.all(released);
  for (const g of four) ok(await request(g.socket, 'room:join', { pin: room.pin }));
  assert.is(codeOf(await request(four[0]!.socket, 'room:update', { roomId: room.id, approval: true })), 'forbidden', 'only the host changes settings');
});

test.run();
