import { randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createAuthService, type AuthService } from '../../server/auth/auth-service.ts';
import { createAuthRateLimits, createLoginBackoff } from '../../server/auth/rate-limits.ts';
import { createRefreshStore } from '../../server/auth/refresh-store.ts';
import { createSessionCheck } from '../../server/auth/session-check.ts';
import { generateSigningJwk, loadSigningKeys, type SigningKeys } from '../../server/auth/signing-keys.ts';
import { createSocketAuth } from '../../server/auth/socket-auth.ts';
import { createTokenService } from '../../server/auth/tokens.ts';
import { createEventRouter } from '../../server/gateway/ack.ts';
import { createIo, type PinroomServer } from '../../server/gateway/create-io.ts';
import { createHttp, type HttpServer } from '../../server/http/create-http.ts';
import { createLogger } from '../../server/logger.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { RoomRefPayload } from '../../shared/schemas.ts';
import { createUserRepository } from '../../server/users/user.repository.ts';
import { connect, connectError, disconnected, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';

// An in-process gateway (real Socket.IO, Redis and PostgreSQL) with one test
// handler behind the auth guard, to count whether handlers run.
const test = suite('auth/socket-guard');
/**
 * Access tokens live this long here. The waits below are for the token to
 * expire (polled, not slept), so a long TTL costs little; it is the margin a
 * loaded machine gets for the round trips a refreshed token must outlive.
 */
const TTL_SECONDS = 4;
/** Grace after expiry before an unrefreshed socket is closed: the margin for refreshing an expired socket. */
const GRACE_MS = 5000;
let ctx: TestContext;
let http: HttpServer;
let io: PinroomServer;
let auth: AuthService;
let url: string;
let handled = 0;
let socketAuthStop: () => void = () => undefined;
const ip = { address: '127.0.0.1' };

test.before(async () => {
  ctx = createTestContext({ ACCESS_TOKEN_TTL_SECONDS: String(TTL_SECONDS), AUTH_CLOCK_TOLERANCE_SECONDS: '0', AUTH_EXPIRY_GRACE_MS: String(GRACE_MS) });
  await ctx.migrate();
  const config = ctx.config;
  const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
  const signing: SigningKeys = await loadSigningKeys({ signingKey: await generateSigningJwk(), verifyKeys: [], dataDir: '/nonexistent' }, 'test');
  const redis = ctx.redis();
  const keys = createKeys(config.redis.keyPrefix);
  http = createHttp({ config, logger });
  io = createIo({ config, logger, httpServer: http.server });
  const router = createEventRouter({ logger });
  auth = createAuthService({
    config: config.auth,
    logger,
    users: createUserRepository({ db: ctx.db() }),
    tokens: createTokenService({ config: config.auth, keys: () => signing }),
    refresh: createRefreshStore({ scripts: createScripts(redis), keys, config: config.auth }),
    sessions: createSessionCheck({ scripts: createScripts(redis), keys }),
    limits: createAuthRateLimits({ redis, keys, limits: config.auth.rateLimits }),
    backoff: createLoginBackoff({ redis, scripts: createScripts(redis), keys, config: config.auth }),
    signingKeys: () => signing,
    onSessionRevoked: (sid) => socketAuth.closeSession(sid),
  });
  const socketAuth = createSocketAuth({ io, auth, router, config, logger });
  socketAuthStop = socketAuth.stop;
  io.use((socket, next) => void socketAuth.middleware(socket, next));
  router.addGuard(socketAuth.guard);
  router.handle('room:leave', RoomRefPayload, () => {
    handled++;
    return {};
  });
  io.on('connection', (socket) => {
    socketAuth.attach(socket);
    router.attach(socket);
  });
  await http.listen({ port: 0, host: '127.0.0.1' });
  const address = http.server.address() as { port: number };
  url = `http://127.0.0.1:${address.port}`;
});
test.after(async () => {
  socketAuthStop();
  io.close();
  await http.close();
  await ctx.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `attempt` every 100 ms until it returns a value; fail after `timeoutMs`. */
async function eventually<T>(attempt: () => Promise<T | undefined>, what: string, timeoutMs = (TTL_SECONDS + 20) * 1000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await attempt();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

test('a socket joins its user and session groups and carries the user in socket.data', async () => {
  const session = await auth.guest({ displayName: 'Data' }, ip);
  const socket = await connect(url, { token: session.accessToken });
  try {
    const [server] = await io.in(`user:${session.user.id}`).fetchSockets();
    assert.ok(server, 'in the user group');
    const claims = await auth.authenticate(session.accessToken);
    assert.equal((await io.in(`session:${claims.sessionId}`).fetchSockets()).map((s) => s.id), [server.id]);
    assert.equal(server.data.user, { id: session.user.id, name: 'Data', kind: 'guest' });
    assert.is(server.data.sessionId, claims.sessionId);
    assert.is(server.data.tokenExpiresAt, claims.expiresAt);
    assert.is(server.data.address, '127.0.0.1');
  } finally {
    socket.close();
  }
});

test('no handler runs for a socket whose token expired; auth:refresh restores it', async () => {
  const session = await auth.guest({ displayName: 'Guarded' }, ip);
  const socket = await connect(url, { token: session.accessToken });
  try {
    const before = handled;
    const ok = await request(socket, 'room:leave', { roomId: randomUUID() });
    assert.ok(ok.ok);
    assert.is(handled, before + 1);
    // Until the token expires the handler runs; from then on it is refused without running.
    const { refused, handledBefore } = await eventually(async () => {
      const handledBefore = handled;
      const answer = await request(socket, 'room:leave', { roomId: randomUUID() });
      return answer.ok ? undefined : { refused: answer, handledBefore };
    }, 'the token to expire');
    assert.equal(refused.ok ? 'ok' : refused.error.code, 'token_expired');
    assert.is(handled, handledBefore, 'the handler did not run');
    // Another user's token is refused; the caller's own fresh token is accepted.
    const stranger = await auth.guest({ displayName: 'Stranger' }, ip);
    const wrong = await request(socket, 'auth:refresh', { token: stranger.accessToken });
    assert.equal(wrong.ok ? 'ok' : wrong.error.code, 'unauthorized');
    const fresh = await auth.refresh({ refreshToken: session.refreshToken }, ip);
    const refreshed = await request(socket, 'auth:refresh', { token: fresh.accessToken });
    assert.ok(refreshed.ok && refreshed.data.expiresIn > 0 && refreshed.data.expiresIn <= TTL_SECONDS, JSON.stringify(refreshed));
    const handledAfterRefresh = handled;
    const again = await request(socket, 'room:leave', { roomId: randomUUID() });
    assert.ok(again.ok);
    assert.is(handled, handledAfterRefresh + 1, 'the handler runs again');
  } finally {
    socket.close();
  }
});

test('an expired token in auth:refresh is token_expired, and the unrefreshed socket is closed with auth:closed', async () => {
  const session = await auth.guest({ displayName: 'Expiring' }, ip);
  const socket: TestSocket = await connect(url, { token: session.accessToken });
  try {
    const deadline = (TTL_SECONDS + 20) * 1000 + GRACE_MS;
    const closed = nextEvent(socket, 'auth:closed', () => true, deadline);
    const gone = disconnected(socket, deadline);
    // Handing the socket its own token again is accepted until the token expires, then refused.
    const stale = await eventually(async () => {
      const answer = await request(socket, 'auth:refresh', { token: session.accessToken });
      return answer.ok ? undefined : answer;
    }, 'the token to expire');
    assert.equal(stale.ok ? 'ok' : stale.error.code, 'token_expired');
    assert.equal(await closed, { code: 'token_expired' });
    assert.is(await gone, 'io server disconnect');
  } finally {
    socket.close();
  }
});

test('the handshake is refused with typed codes: no token, garbage, expired, revoked session', async () => {
  assert.is((await connectError(url)).data?.code, 'unauthorized');
  assert.is((await connectError(url, { token: 'garbage' })).data?.code, 'unauthorized');
  const session = await auth.guest({ displayName: 'Refused' }, ip);
  assert.is((await connectError(url, { token: session.refreshToken })).data?.code, 'unauthorized');
  const expiring = await auth.guest({ displayName: 'Late' }, ip);
  await auth.logout({ refreshToken: session.refreshToken }, ip);
  assert.is((await connectError(url, { token: session.accessToken })).data?.code, 'session_revoked');
  // Accepted until it expires, then refused as expired.
  const expired = await eventually(
    () =>
      connectError(url, { token: expiring.accessToken }).then(
        (err) => err,
        () => undefined,
      ),
    'the token to expire',
  );
  assert.is(expired.data?.code, 'token_expired');
});

test('once connected, a WebSocket keeps neither the bytes of its CONNECT frame (the access token) nor its cleared HTTP idle timer', async () => {
  const session = await auth.guest({ displayName: 'Lean' }, ip);
  const socket = await connect(url, { token: session.accessToken });
  try {
    const [found] = await io.in(`user:${session.user.id}`).fetchSockets();
    const server = io.sockets.sockets.get(found!.id)!;
    const ws = (server.conn.transport as unknown as { socket: { _receiver: { _mask?: Uint8Array }; _socket: Record<symbol, unknown> } }).socket;
    // ws reads each frame's masking key as a view into the chunk the frame came in.
    const mask = ws._receiver._mask;
    const token = Buffer.from(session.accessToken);
    assert.ok(mask === undefined || !Buffer.from(mask.buffer).includes(token), 'the CONNECT frame, with the token, is still referenced');
    const timerField = Object.getOwnPropertySymbols(ws._socket).find((s) => s.description === 'timeout');
    assert.ok(timerField, 'net.Socket keeps its idle timer under a `timeout` symbol');
    assert.is(ws._socket[timerField], null, 'the cleared idle timer is still referenced');
  } finally {
    socket.close();
  }
});

test('logout closes the live sockets of that session only', async () => {
  const session = await auth.guest({ displayName: 'Two tabs' }, ip);
  const other = await auth.guest({ displayName: 'Neighbour' }, ip);
  const a = await connect(url, { token: session.accessToken });
  const b = await connect(url, { token: session.accessToken });
  const c = await connect(url, { token: other.accessToken });
  try {
    const events = [nextEvent(a, 'auth:closed'), nextEvent(b, 'auth:closed')];
    const gone = [disconnected(a), disconnected(b)];
    await auth.logout({ refreshToken: session.refreshToken }, ip);
    assert.equal(await Promise.all(events), [{ code: 'session_revoked' }, { code: 'session_revoked' }]);
    assert.equal(await Promise.all(gone), ['io server disconnect', 'io server disconnect']);
    assert.ok(c.connected);
  } finally {
    for (const s of [a, b, c]) s.close();
  }
});

test.run();
