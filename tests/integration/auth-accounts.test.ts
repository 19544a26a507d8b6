/**
 * Accounts are created all or nothing, against real Redis and PostgreSQL:
 * the session store lives on the test's own redis-server, killed between the
 * rate limit (on the shared Redis, still up) and the session, which is where
 * a register used to fail after inserting its user. Guests' sessions end
 * within GUEST_RETENTION_DAYS.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createAuthService, type AuthService } from '../../server/auth/auth-service.ts';
import { createAuthRateLimits, createLoginBackoff } from '../../server/auth/rate-limits.ts';
import { createRefreshStore, parseRefreshToken } from '../../server/auth/refresh-store.ts';
import { createSessionCheck } from '../../server/auth/session-check.ts';
import { generateSigningJwk, loadSigningKeys, type SigningKeys } from '../../server/auth/signing-keys.ts';
import { createTokenService } from '../../server/auth/tokens.ts';
import type { Config } from '../../server/config.ts';
import { createLogger } from '../../server/logger.ts';
import { closeRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { createUserRepository } from '../../server/users/user.repository.ts';
import { rejectsWithCode } from '../support/assert.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { until } from '../support/faults.ts';
import { startRedisServer } from '../support/redis-server.ts';
import type { RedisClient as Redis } from '../../server/redis/connections.ts';

const test = suite('auth/accounts');
const ip = { address: '192.0.2.44' };
const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
let ctx: TestContext;
let signingKeys: SigningKeys;

/** An auth service whose rate limits use `limitsRedis` and whose sessions live on `sessionRedis`. */
function authWith(config: Config, limitsRedis: Redis, sessionRedis: Redis): AuthService {
  const keys = createKeys(config.redis.keyPrefix);
  return createAuthService({
    config: config.auth,
    logger,
    users: createUserRepository({ db: ctx.db() }),
    tokens: createTokenService({ config: config.auth, keys: () => signingKeys }),
    refresh: createRefreshStore({ scripts: createScripts(sessionRedis), keys, config: config.auth }),
    sessions: createSessionCheck({ scripts: createScripts(sessionRedis), keys }),
    limits: createAuthRateLimits({ redis: limitsRedis, keys, limits: config.auth.rateLimits }),
    backoff: createLoginBackoff({ redis: limitsRedis, scripts: createScripts(limitsRedis), keys, config: config.auth }),
    signingKeys: () => signingKeys,
  });
}

const userRows = (username: string) =>
  ctx
    .db()
    .selectFrom('users')
    .select('id')
    .where((eb) => eb(eb.fn('lower', ['username']), '=', username.toLowerCase()))
    .execute();

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  signingKeys = await loadSigningKeys({ signingKey: await generateSigningJwk(), verifyKeys: [], dataDir: '/nonexistent' }, 'test');
});
test.after(async () => {
  await ctx.cleanup();
});

test('a register that fails on Redis leaves no account behind, and the same username and password can be registered once Redis is back', async () => {
  const owned = await startRedisServer();
  const config = ctx.configWith({ REDIS_URL: owned.url, REDIS_COMMAND_TIMEOUT_MS: '500' });
  const sessions = createRedisClient(config, logger, 'command', { enableOfflineQueue: false, retryStrategy: () => 100 });
  try {
    await sessions.connect();
    const auth = authWith(config, ctx.redis(), sessions);
    const body = { username: `retry_${Date.now().toString(36)}`, password: 'correct horse battery' };
    await owned.kill();
    await rejectsWithCode(() => auth.register(body, ip), 'unavailable');
    assert.equal(await userRows(body.username), [], 'no user row was left behind');
    const limited = await ctx.redis().keys(`${ctx.keyPrefix}rl:auth-register-ip:*`);
    assert.is(limited.length, 1, 'the request got past its rate limit (on the Redis that stayed up) before failing');

    await owned.start();
    await until(() => sessions.status === 'ready', 'the session store to reconnect');
    const session = await auth.register(body, ip);
    assert.is(session.user.username, body.username);
    assert.ok(await auth.login(body, ip), 'the account signs in');
    assert.is((await userRows(body.username)).length, 1);
  } finally {
    await closeRedis(sessions);
    await owned.dispose();
  }
});

test('a register whose insert fails (a taken username) discards the session it opened first', async () => {
  const redis = ctx.redis();
  const auth = authWith(ctx.config, redis, redis);
  const sessionKeys = async () => (await redis.keys(`${ctx.keyPrefix}auth:session:*`)).length;
  const body = { username: `taken_${Date.now().toString(36)}`, password: 'correct horse battery' };
  await auth.register(body, ip);
  const before = await sessionKeys();
  await rejectsWithCode(() => auth.register({ ...body, password: 'another password' }, ip), 'username_taken');
  assert.is(await sessionKeys(), before, 'no session (nor refresh token) is left for the account that was not created');
});

test('a guest session ends within GUEST_RETENTION_DAYS, before the account is removed; registered sessions keep SESSION_MAX_AGE_SECONDS', async () => {
  const config = ctx.configWith({ GUEST_RETENTION_DAYS: '2' });
  const redis = ctx.redis();
  const auth = authWith(config, redis, redis);
  const keys = createKeys(config.redis.keyPrefix);
  const absoluteExpiry = async (refreshToken: string) => Number(await redis.hget(keys.session(parseRefreshToken(refreshToken)!), 'absExp'));
  const before = Date.now();
  const guest = await auth.guest({ displayName: 'Visitor' }, ip);
  const guestExpiry = await absoluteExpiry(guest.refreshToken);
  assert.ok(guestExpiry >= before + 2 * 86_400_000 && guestExpiry <= Date.now() + 2 * 86_400_000, 'two days');
  const registered = await auth.register({ username: `kept_${Date.now().toString(36)}`, password: 'correct horse battery' }, ip);
  assert.ok((await absoluteExpiry(registered.refreshToken)) >= before + config.auth.sessionMaxAgeSeconds * 1000);
});

test.run();
