import { io } from 'socket.io-client';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { generateSigningJwk } from '../../server/auth/signing-keys.ts';
import { postJson, refreshTokens, signInGuest, signUp } from '../support/auth.ts';
import { connect, connectError, disconnected, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { until } from '../support/faults.ts';
import { startRedisServer } from '../support/redis-server.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('auth/sockets');
let ctx: TestContext;
const servers: TestServer[] = [];
const sockets: TestSocket[] = [];

test.before(async () => {
  ctx = createTestContext({ AUTH_SIGNING_KEY: JSON.stringify(await generateSigningJwk()) });
});
test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.all(servers.map((s) => s.stop()));
  await ctx.cleanup();
});

async function start(env: Record<string, string> = {}): Promise<TestServer> {
  const server = await startTestServer({ ...ctx.env, ...env });
  servers.push(server);
  return server;
}
async function open(url: string, token: string): Promise<TestSocket> {
  const socket = await connect(url, { token });
  sockets.push(socket);
  return socket;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a socket refreshed over auth:refresh stays connected past its first token expiry; an unrefreshed one is disconnected with token_expired', async () => {
  // Short access tokens, so two of them expire within the test. The client has
  // NOTICE + GRACE (4 s) to refresh after each notice: margin for a loaded
  // machine, since only order and outcome are checked, not speed.
  const TTL = 6;
  const NOTICE = 2;
  const GRACE_MS = 2000;
  const server = await start({ ACCESS_TOKEN_TTL_SECONDS: String(TTL), AUTH_EXPIRING_NOTICE_SECONDS: String(NOTICE), AUTH_EXPIRY_GRACE_MS: String(GRACE_MS), AUTH_CLOCK_TOLERANCE_SECONDS: '0' });
  const kept = await signInGuest(server.url, 'Keeper');
  const dropped = await signInGuest(server.url, 'Dropper');
  const firstExpiry = Date.now() + kept.expiresIn * 1000;

  // The refreshing client: on every auth:expiring, rotate over HTTP and hand the socket the new token.
  let refreshToken = kept.refreshToken;
  const refreshes: number[] = [];
  const keeper: TestSocket = io(server.url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: kept.accessToken } });
  sockets.push(keeper);
  const keeperClosed: string[] = [];
  keeper.on('auth:closed', ({ code }) => keeperClosed.push(code));
  const notices: number[] = [];
  const failures: unknown[] = [];
  keeper.on('auth:expiring', ({ expiresIn }) => {
    notices.push(expiresIn);
    void (async () => {
      const pair = await refreshTokens(server.url, refreshToken);
      refreshToken = pair.refreshToken;
      const ack = await request(keeper, 'auth:refresh', { token: pair.accessToken });
      if (ack.ok) refreshes.push(ack.data.expiresIn);
      else failures.push(ack.error);
    })().catch((err: unknown) => {
      if (keeper.connected) failures.push(err);
    });
  });
  await new Promise<void>((resolve, reject) => {
    keeper.once('connect', resolve);
    keeper.once('connect_error', reject);
  });

  const dropper = await open(server.url, dropped.accessToken);
  const expiring = nextEvent(dropper, 'auth:expiring', () => true, 30_000);
  const closed = nextEvent(dropper, 'auth:closed', () => true, 40_000);
  const gone = disconnected(dropper, 40_000);
  assert.ok((await expiring).expiresIn <= NOTICE);
  assert.equal(await closed, { code: 'token_expired' });
  assert.is(await gone, 'io server disconnect');

  // Through a second token's lifetime (two refreshes) and past the first token's expiry plus grace.
  await until(() => refreshes.length + failures.length >= 2 || !keeper.connected, 'two refreshes of the keeper', 60_000);
  const wait = firstExpiry + GRACE_MS + 500 - Date.now();
  if (wait > 0) await sleep(wait);
  assert.ok(keeper.connected, 'the refreshed socket is still connected');
  keeper.close();
  assert.equal(keeperClosed, []);
  assert.equal(failures, []);
  assert.ok(notices.every((s) => s <= NOTICE), `auth:expiring at most ${NOTICE} s before expiry: ${notices.join()}`);
  assert.ok(refreshes.length >= 2, `refreshed ${refreshes.length} times`);
  assert.ok(refreshes.every((s) => s > 0 && s <= TTL), `each refresh answered the new token's remaining life: ${refreshes.join()}`);
  // After a refresh the new token is the socket's: a reconnect with the first token is refused as expired.
  assert.is((await connectError(server.url, { token: kept.accessToken })).data?.code, 'token_expired');
});

test('reuse detection on one node disconnects the session\'s live sockets on every node with session_revoked', async () => {
  const [a, b] = await Promise.all([start(), start()]);
  const victim = await signUp(a.url);
  const bystander = await signInGuest(b.url, 'Bystander');
  const onA = await open(a.url, victim.accessToken);
  const onB = await open(b.url, victim.accessToken);
  const other = await open(b.url, bystander.accessToken);
  const closed = [nextEvent(onA, 'auth:closed', () => true, 10_000), nextEvent(onB, 'auth:closed', () => true, 10_000)];
  const gone = [disconnected(onA, 10_000), disconnected(onB, 10_000)];

  // The legitimate client rotates on node B; a thief replays the old token on node A.
  const rotated = await refreshTokens(b.url, victim.refreshToken);
  await sleep(50);
  const second = await refreshTokens(b.url, rotated.refreshToken);
  const replay = await postJson<{ error: { code: string } }>(`${a.url}/auth/refresh`, { refreshToken: victim.refreshToken });
  assert.equal([replay.status, replay.body.error.code], [401, 'token_reused']);

  assert.equal(await Promise.all(closed), [{ code: 'session_revoked' }, { code: 'session_revoked' }]);
  assert.equal(await Promise.all(gone), ['io server disconnect', 'io server disconnect']);
  assert.ok(other.connected, 'another session is untouched');
  // Every access token and refresh token of the family is dead, on both nodes.
  for (const url of [a.url, b.url]) {
    assert.is((await connectError(url, { token: victim.accessToken })).data?.code, 'session_revoked');
    assert.is((await connectError(url, { token: second.accessToken })).data?.code, 'session_revoked');
  }
  const afterwards = await postJson<{ error: { code: string } }>(`${b.url}/auth/refresh`, { refreshToken: second.refreshToken });
  assert.equal([afterwards.status, afterwards.body.error.code], [401, 'session_revoked']);
  // Logged as it happens, not before the answer: wait for the line.
  await until(() => a.output().includes('"msg":"auth.token_reused"'), 'the auth.token_reused log line');
});

test('a reconnect storm with tokens the node verified before skips their signature check, never the session check', async () => {
  const server = await start();
  const users = await Promise.all(Array.from({ length: 40 }, (_, i) => signInGuest(server.url, `Storm ${i}`)));
  const verifications = async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const value = (path: string) => Number(new RegExp(`^pinroom_auth_token_verifications_total\\{path="${path}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    return { cached: value('cached'), checked: value('checked'), entries: Number(/^pinroom_auth_verified_tokens (\d+)/m.exec(text)?.[1] ?? NaN) };
  };
  const first = await Promise.all(users.map((u) => open(server.url, u.accessToken)));
  const before = await verifications();
  assert.ok(before.entries >= users.length, `${before.entries} tokens cached`);
  for (const s of first) s.close();
  // The session of one of them ends while it is away.
  const [leaver, ...stayers] = users;
  assert.is((await postJson(`${server.url}/auth/logout`, { refreshToken: leaver!.refreshToken })).status, 204);

  const again = await Promise.all(stayers.map((u) => open(server.url, u.accessToken)));
  assert.ok(again.every((s) => s.connected));
  assert.is((await connectError(server.url, { token: leaver!.accessToken })).data?.code, 'session_revoked');
  const after = await verifications();
  assert.is(after.checked, before.checked, 'no token was checked in full again');
  assert.is(after.cached - before.cached, users.length, 'every reconnect, the revoked one included, was answered by the cache');
  for (const s of again) s.close();
});

test('logout on one node disconnects that session\'s sockets on the other node', async () => {
  const [a, b] = servers.length >= 3 ? [servers[1]!, servers[2]!] : await Promise.all([start(), start()]);
  const user = await signInGuest(a.url, 'Leaver');
  const onB = await open(b.url, user.accessToken);
  const closed = nextEvent(onB, 'auth:closed', () => true, 10_000);
  const gone = disconnected(onB, 10_000);
  const res = await postJson(`${a.url}/auth/logout`, { refreshToken: user.refreshToken });
  assert.is(res.status, 204);
  assert.equal(await closed, { code: 'session_revoked' });
  assert.is(await gone, 'io server disconnect');
  // Logged as it happens, not before the answer: wait for the line.
  await until(() => a.output().includes('"msg":"auth.logged_out"'), 'the auth.logged_out log line');
});

test('while Redis is down the handshake is refused with unavailable (retryable); once it is back handshakes are answered again', async () => {
  const redis = await startRedisServer();
  try {
    const server = await start({ REDIS_URL: redis.url, REDIS_CLUSTER_NODES: '', REDIS_COMMAND_TIMEOUT_MS: '500' });
    const session = await signInGuest(server.url, 'Through an outage');
    (await open(server.url, session.accessToken)).close();
    await redis.kill();
    const refused = await connectError(server.url, { token: session.accessToken });
    assert.is(refused.data?.code, 'unavailable', `refused as unavailable, not as a bad token: ${JSON.stringify(refused.data)}`);
    assert.is((refused.data as { retryable?: boolean } | undefined)?.retryable, true, 'marked retryable');
    assert.is((await fetch(`${server.url}/healthz`)).status, 200, 'the node stays up');
    await redis.start();
    // The session lived in Redis and is gone with it (no persistence): the handshake now says so, as a typed refusal.
    const after = await eventuallyAnswered(server.url, session.accessToken);
    assert.is(after, 'session_revoked', 'the session went with the data: sign in again');
    const fresh = await signInGuest(server.url, 'After the outage');
    assert.is(await eventuallyAnswered(server.url, fresh.accessToken), 'connected');
  } finally {
    await redis.dispose();
  }
});

/** Connect until the handshake is no longer refused as unavailable (the node's Redis connection is back); 'connected' or the refusal code. */
async function eventuallyAnswered(url: string, token: string): Promise<string> {
  let outcome = 'unavailable';
  await until(async () => {
    try {
      (await open(url, token)).close();
      outcome = 'connected';
    } catch (err) {
      outcome = (err as { data?: { code?: string } }).data?.code ?? String(err);
    }
    return outcome !== 'unavailable';
  }, 'the handshake to be answered again', 30_000);
  return outcome;
}

test.run();
