/**
 * Revocation that cannot be missed. Two nodes on their own redis-server;
 * node B connects as a Redis ACL user whose channel permissions the test
 * then takes away: Redis closes B's subscriber connection and refuses its
 * resubscription (NOPERM), while B's commands keep working. B has really
 * lost the Socket.IO adapter: Redis lists no subscription of B's user. A logout on node A then closes the session's socket on A at
 * once, through the adapter; the socket on B is closed by B's own periodic
 * re-check within SESSION_RECHECK_MS (the bound is explained at CLOSE_BOUND_MS).
 */
import { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { postJson, signInGuest, signUp } from '../support/auth.ts';
import { connect, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { ok, until } from '../support/faults.ts';
import { startRedisServer, type OwnedRedis } from '../support/redis-server.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('abuse/revocation');
const RECHECK_MS = 4000;
/**
 * The latest a missed revocation may be closed, ms after the logout was sent.
 * A re-check turn waits 0.9–1.1 × RECHECK_MS after the previous turn ended
 * (jitter), so a turn that read the session just before the logout is
 * followed by one at most 1.1 × RECHECK_MS later; the slack of half an
 * interval covers the two reads, the logout's own round trip and the
 * auth:closed frame on a loaded machine. It stays below 1.8 × RECHECK_MS, the
 * earliest a second turn could run, so meeting it proves the first turn after
 * the revocation closed the socket (not a later one, nor the token's expiry).
 * The logout lands at a random phase of B's turns, so a re-check slower than
 * configured fails here only when that phase is late (one sample).
 */
const CLOSE_BOUND_MS = RECHECK_MS * 1.1 + RECHECK_MS * 0.5;
const NODE_B_USER = 'pinroom-node-b';
const NODE_B_PASSWORD = 'node-b-password';

let ctx: TestContext;
let redis: OwnedRedis;
let admin: Redis;
let a: TestServer;
let b: TestServer;
const sockets: TestSocket[] = [];
const track = (s: TestSocket) => (sockets.push(s), s);

/** Channels and patterns the Redis connections of `user` are subscribed to (CLIENT LIST `sub` + `psub`). */
async function subscriptionsOf(user: string): Promise<number> {
  const list = String(await admin.call('CLIENT', 'LIST'));
  return list
    .split('\n')
    .filter((line) => line.includes(` user=${user} `))
    .reduce((n, line) => n + Number(/ sub=(\d+)/.exec(line)?.[1] ?? 0) + Number(/ psub=(\d+)/.exec(line)?.[1] ?? 0), 0);
}

/** Whether a `room:signal` sent from `from` reaches `to` within `ms`. */
async function signalReaches(from: TestSocket, to: TestSocket, roomId: string, ms: number): Promise<boolean> {
  const marker = `probe-${Math.random()}`;
  const arrived = nextEvent(to, 'room:signal', (s) => s.payload.marker === marker, ms).then(
    () => true,
    () => false,
  );
  from.emit('room:signal', { roomId, type: 'probe', payload: { marker } });
  return arrived;
}

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  redis = await startRedisServer();
  admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  await admin.call('ACL', 'SETUSER', NODE_B_USER, 'on', `>${NODE_B_PASSWORD}`, '~*', '&*', '+@all');
  const env = { ...ctx.env, REDIS_URL: redis.url, SESSION_RECHECK_MS: String(RECHECK_MS) };
  const nodeBUrl = new URL(redis.url);
  nodeBUrl.username = NODE_B_USER;
  nodeBUrl.password = NODE_B_PASSWORD;
  [a, b] = await Promise.all([startTestServer(env), startTestServer({ ...env, REDIS_URL: nodeBUrl.toString() })]);
});

test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled([a?.stop(), b?.stop()]);
  admin?.disconnect();
  await redis?.dispose();
  await ctx.cleanup();
});

test('a revoked session\'s socket on a node that missed the logout broadcast is closed by that node\'s re-check within SESSION_RECHECK_MS', async () => {
  const host = await signUp(a.url);
  const hostSocket = track(await connect(a.url, { token: host.accessToken }));
  const { room } = ok(await request(hostSocket, 'room:create', { title: 'Revocation' }));
  const user = await signInGuest(a.url, 'Leaving');
  const onA = track(await connect(a.url, { token: user.accessToken }));
  const onB = track(await connect(b.url, { token: user.accessToken }));
  ok(await request(onB, 'room:join', { pin: room.pin }));
  await until(() => signalReaches(hostSocket, onB, room.id, 1000), 'node B to receive broadcasts before the fault');

  // The fault: node B loses its pub/sub permissions; Redis drops its subscriber and refuses it from now on.
  assert.ok((await subscriptionsOf(NODE_B_USER)) > 0, 'node B is subscribed before the fault');
  await admin.call('ACL', 'SETUSER', NODE_B_USER, 'resetchannels');
  await until(async () => (await subscriptionsOf(NODE_B_USER)) === 0, 'node B to hold no subscription (its resubscription refused)');
  assert.ok((await fetch(`${b.url}/healthz`)).ok, 'node B is up');

  const closedOnA = nextEvent(onA, 'auth:closed', () => true);
  // A deadline well past the bound, so a late close is reported with its time rather than as a timeout.
  const closedOnB = nextEvent(onB, 'auth:closed', () => true, CLOSE_BOUND_MS + 10_000).then((payload) => ({ payload, at: Date.now() }));
  // Taken before the logout is sent: the revocation happens later, so the measured time can only be longer than the real one.
  const loggedOutAt = Date.now();
  assert.is((await postJson(`${a.url}/auth/logout`, { refreshToken: user.refreshToken })).status, 204);
  assert.equal(await closedOnA, { code: 'session_revoked' }, 'the broadcast closes the socket on node A');
  const onBClosed = await closedOnB;
  assert.equal(onBClosed.payload, { code: 'session_revoked' }, 'node B\'s re-check closes it');
  const after = onBClosed.at - loggedOutAt;
  assert.ok(after <= CLOSE_BOUND_MS, `node B closed the socket ${after} ms after the logout; the re-check every ${RECHECK_MS} ms must close it within ${CLOSE_BOUND_MS} ms`);
  await until(() => !onB.connected, 'the socket on node B to be disconnected');
  assert.ok(onA.disconnected && onB.disconnected);
  assert.ok(hostSocket.connected, 'other sessions are untouched');
});

test.run();
