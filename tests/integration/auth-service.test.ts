import { Writable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createAuthService, type AuthAuditEvent, type AuthService } from '../../server/auth/auth-service.ts';
import { createAuthRateLimits, createLoginBackoff } from '../../server/auth/rate-limits.ts';
import { createRefreshStore } from '../../server/auth/refresh-store.ts';
import { createSessionCheck } from '../../server/auth/session-check.ts';
import { generateSigningJwk, loadSigningKeys, type SigningKeys } from '../../server/auth/signing-keys.ts';
import { createTokenService, type TokenService } from '../../server/auth/tokens.ts';
import type { Config } from '../../server/config.ts';
import { AppError } from '../../server/errors.ts';
import { createLogger } from '../../server/logger.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { createUserRepository } from '../../server/users/user.repository.ts';
import { rejectsWithCode } from '../support/assert.ts';
import { createTestContext, deleteByPrefix, type TestContext } from '../support/context.ts';
import { startRedisServer } from '../support/redis-server.ts';
import { closeRedis, createRedisClient } from '../../server/redis/connections.ts';

const test = suite('auth/service');
let ctx: TestContext;
let signingKeys: SigningKeys;
const ip = { address: '192.0.2.10' };

interface Harness {
  auth: AuthService;
  tokens: TokenService;
  audit: AuthAuditEvent[];
  revoked: string[];
  logs: () => string;
  clock: { offsetMs: number };
}

function harness(overrides: Record<string, string> = {}): Harness {
  const config: Config = ctx.configWith(overrides);
  let logText = '';
  const destination = new Writable({
    write(chunk, _enc, done) {
      logText += chunk.toString();
      done();
    },
  });
  const logger = createLogger({ log: { level: 'info' }, env: 'test' }, destination);
  const redis = ctx.redis();
  const keys = createKeys(config.redis.keyPrefix);
  const clock = { offsetMs: 0 };
  const now = () => Date.now() + clock.offsetMs;
  const audit: AuthAuditEvent[] = [];
  const revoked: string[] = [];
  const tokens = createTokenService({ config: config.auth, keys: () => signingKeys, now });
  const auth = createAuthService({
    config: config.auth,
    logger,
    users: createUserRepository({ db: ctx.db() }),
    tokens,
    refresh: createRefreshStore({ scripts: createScripts(redis), keys, config: config.auth, now }),
    sessions: createSessionCheck({ scripts: createScripts(redis), keys }),
    limits: createAuthRateLimits({ redis, keys, limits: config.auth.rateLimits }),
    backoff: createLoginBackoff({ redis, scripts: createScripts(redis), keys, config: config.auth }),
    signingKeys: () => signingKeys,
    audit: (event) => audit.push(event),
    onSessionRevoked: (sessionId) => revoked.push(sessionId),
    now,
  });
  return { auth, tokens, audit, revoked, logs: () => logText, clock };
}

const codeOf = (err: unknown) => (err instanceof AppError ? err.code : `non-AppError: ${String(err)}`);

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  signingKeys = await loadSigningKeys({ signingKey: await generateSigningJwk(), verifyKeys: [], dataDir: '/nonexistent' }, 'test');
});
test.after(async () => {
  await ctx.cleanup();
});
test.before.each(async () => {
  // Rate-limit counters from one test must not leak into the next.
  await deleteByPrefix(ctx.redis(), `${ctx.keyPrefix}rl`);
});

test('a guest gets a user row and a session whose access token authenticates', async () => {
  const { auth, audit } = harness();
  const session = await auth.guest({ displayName: 'Ada' }, ip);
  assert.equal({ name: session.user.name, kind: session.user.kind, username: session.user.username }, { name: 'Ada', kind: 'guest', username: null });
  assert.is(session.expiresIn, 600);
  const claims = await auth.authenticate(session.accessToken);
  assert.is(claims.userId, session.user.id);
  assert.is(claims.kind, 'guest');
  const row = await ctx.db().selectFrom('users').selectAll().where('id', '=', session.user.id).executeTakeFirstOrThrow();
  assert.is(row.kind, 'guest');
  assert.is(row.password_hash, null);
  assert.is(audit.at(-1)?.type, 'auth.signed_in');
});

test('register then log in with the username in another case; wrong password and unknown user both get invalid_credentials', async () => {
  const { auth, audit } = harness();
  const registered = await auth.register({ username: 'Grace_H', password: 'correct horse battery' }, ip);
  assert.equal({ name: registered.user.name, kind: registered.user.kind, username: registered.user.username }, { name: 'Grace_H', kind: 'registered', username: 'Grace_H' });
  const loggedIn = await auth.login({ username: 'grace_h', password: 'correct horse battery' }, ip);
  assert.is(loggedIn.user.id, registered.user.id);
  assert.is.not((await auth.authenticate(loggedIn.accessToken)).sessionId, (await auth.authenticate(registered.accessToken)).sessionId);
  await rejectsWithCode(() => auth.login({ username: 'grace_h', password: 'wrong horse battery' }, ip), 'invalid_credentials');
  await rejectsWithCode(() => auth.login({ username: 'nobody_here', password: 'correct horse battery' }, ip), 'invalid_credentials');
  assert.is(audit.filter((e) => e.type === 'auth.login_failed').length, 2);
});

test('a username is taken in any letter case', async () => {
  const { auth } = harness();
  await auth.register({ username: 'Linus', password: 'password-one', displayName: 'Linus T' }, ip);
  await rejectsWithCode(() => auth.register({ username: 'LINUS', password: 'password-two' }, ip), 'username_taken');
});

test('passwords are stored as salted scrypt hashes and never returned', async () => {
  const { auth } = harness();
  const a = await auth.register({ username: 'same_pw_a', password: 'shared secret pw' }, ip);
  const b = await auth.register({ username: 'same_pw_b', password: 'shared secret pw' }, ip);
  const rows = await ctx.db().selectFrom('users').select(['id', 'password_hash']).where('id', 'in', [a.user.id, b.user.id]).execute();
  const [ha, hb] = rows.map((r) => r.password_hash!);
  assert.match(ha!, /^scrypt\$15\$8\$3\$/);
  assert.is.not(ha, hb, 'a per-user salt');
  assert.not.match(ha!, 'shared secret pw');
  const text = JSON.stringify([a, b]);
  assert.not.match(text, 'scrypt$');
  assert.not.match(text, 'shared secret pw');
});

test('each refresh rotates: the successor works, the spent token is refused, and the chain goes on', async () => {
  const { auth } = harness({ REFRESH_REUSE_GRACE_SECONDS: '0' });
  const session = await auth.guest({ displayName: 'Chain' }, ip);
  const sid = (await auth.authenticate(session.accessToken)).sessionId;
  let token = session.refreshToken;
  const seen = new Set([token]);
  for (let i = 0; i < 5; i++) {
    const next = await auth.refresh({ refreshToken: token }, ip);
    assert.ok(!seen.has(next.refreshToken), 'a new refresh token every time');
    seen.add(next.refreshToken);
    const claims = await auth.authenticate(next.accessToken);
    assert.is(claims.sessionId, sid, 'same session (family)');
    assert.is(claims.userId, session.user.id);
    token = next.refreshToken;
  }
  assert.ok(token.startsWith(`${sid}.`));
});

test('a replayed rotated token revokes the whole family: newest refresh token and every access token of the session stop working', async () => {
  const { auth, audit, revoked, logs } = harness();
  const session = await auth.guest({ displayName: 'Victim' }, ip);
  const t1 = await auth.refresh({ refreshToken: session.refreshToken }, ip);
  const t2 = await auth.refresh({ refreshToken: t1.refreshToken }, ip);
  const sid = (await auth.authenticate(t2.accessToken)).sessionId;
  // The original token is two rotations old: no grace applies to it.
  await rejectsWithCode(() => auth.refresh({ refreshToken: session.refreshToken }, { address: '198.51.100.66' }), 'token_reused');
  await rejectsWithCode(() => auth.refresh({ refreshToken: t2.refreshToken }, ip), 'session_revoked');
  for (const access of [session.accessToken, t1.accessToken, t2.accessToken]) await rejectsWithCode(() => auth.authenticate(access), 'session_revoked');
  assert.equal(revoked, [sid]);
  const alarm = audit.find((e) => e.type === 'auth.token_reused');
  assert.equal(alarm && { userId: alarm.userId, sessionId: alarm.sessionId, address: alarm.address }, { userId: session.user.id, sessionId: sid, address: '198.51.100.66' });
  assert.match(logs(), '"msg":"auth.token_reused"');
  // Other sessions of the same user are untouched.
  const other = await auth.guest({ displayName: 'Bystander' }, ip);
  await auth.refresh({ refreshToken: other.refreshToken }, ip);
});

test('within the grace only the immediate predecessor answers conflict and changes nothing; past the grace it is reuse', async () => {
  const { auth, clock, revoked } = harness({ REFRESH_REUSE_GRACE_SECONDS: '5' });
  const session = await auth.guest({ displayName: 'Tabs' }, ip);
  const t1 = await auth.refresh({ refreshToken: session.refreshToken }, ip);
  await rejectsWithCode(() => auth.refresh({ refreshToken: session.refreshToken }, ip), 'conflict');
  assert.equal(revoked, []);
  const t2 = await auth.refresh({ refreshToken: t1.refreshToken }, ip);
  // t1 is now the immediate predecessor; the original is older and is reuse even within the grace.
  await rejectsWithCode(() => auth.refresh({ refreshToken: t1.refreshToken }, ip), 'conflict');
  clock.offsetMs = 6000;
  await rejectsWithCode(() => auth.refresh({ refreshToken: t1.refreshToken }, ip), 'token_reused');
  await rejectsWithCode(() => auth.refresh({ refreshToken: t2.refreshToken }, ip), 'session_revoked');
  assert.is(revoked.length, 1);
});

test('an older token within the grace is still reuse', async () => {
  const { auth } = harness({ REFRESH_REUSE_GRACE_SECONDS: '10' });
  const session = await auth.guest({ displayName: 'Old' }, ip);
  const t1 = await auth.refresh({ refreshToken: session.refreshToken }, ip);
  await auth.refresh({ refreshToken: t1.refreshToken }, ip);
  await rejectsWithCode(() => auth.refresh({ refreshToken: session.refreshToken }, ip), 'token_reused');
});

async function refreshTokenKeys(sessionId: string): Promise<string[]> {
  return ctx.redis().keys(`${ctx.keyPrefix}auth:session:{${sessionId}}:rt:*`);
}

test('fifty concurrent refreshes of one token give exactly one successor (with the grace: 49 conflicts, session intact)', async () => {
  const { auth } = harness({ REFRESH_REUSE_GRACE_SECONDS: '5' });
  const session = await auth.guest({ displayName: 'Race' }, ip);
  const sid = (await auth.authenticate(session.accessToken)).sessionId;
  const results = await Promise.allSettled(Array.from({ length: 50 }, () => auth.refresh({ refreshToken: session.refreshToken }, ip)));
  const winners = results.filter((r) => r.status === 'fulfilled');
  assert.is(winners.length, 1);
  const codes = results.filter((r) => r.status === 'rejected').map((r) => codeOf((r as PromiseRejectedResult).reason));
  assert.equal([...new Set(codes)], ['conflict']);
  assert.is((await refreshTokenKeys(sid)).length, 2, 'the original and one successor');
  const next = await auth.refresh({ refreshToken: (winners[0] as PromiseFulfilledResult<{ refreshToken: string }>).value.refreshToken }, ip);
  assert.ok(next.refreshToken);
});

test('fifty concurrent refreshes without a grace: one successor, the other 49 are reuse, and the family is revoked', async () => {
  const { auth, revoked } = harness({ REFRESH_REUSE_GRACE_SECONDS: '0' });
  const session = await auth.guest({ displayName: 'Race0' }, ip);
  const sid = (await auth.authenticate(session.accessToken)).sessionId;
  const results = await Promise.allSettled(Array.from({ length: 50 }, () => auth.refresh({ refreshToken: session.refreshToken }, ip)));
  const winners = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ refreshToken: string }>[];
  assert.is(winners.length, 1);
  const codes = results.filter((r) => r.status === 'rejected').map((r) => codeOf((r as PromiseRejectedResult).reason));
  assert.is(codes.length, 49);
  assert.ok(codes.every((c) => c === 'token_reused' || c === 'session_revoked'), codes.join());
  assert.is((await refreshTokenKeys(sid)).length, 2);
  await rejectsWithCode(() => auth.refresh({ refreshToken: winners[0]!.value.refreshToken }, ip), 'session_revoked');
  assert.ok(revoked.includes(sid));
});

test('logout revokes the session without a reuse alarm, twice is fine, and an unknown token is unauthorized', async () => {
  const { auth, audit, revoked } = harness();
  const session = await auth.guest({ displayName: 'Leaving' }, ip);
  const t1 = await auth.refresh({ refreshToken: session.refreshToken }, ip);
  const sid = (await auth.authenticate(t1.accessToken)).sessionId;
  await auth.logout({ refreshToken: t1.refreshToken }, ip);
  await rejectsWithCode(() => auth.authenticate(t1.accessToken), 'session_revoked');
  await rejectsWithCode(() => auth.refresh({ refreshToken: t1.refreshToken }, ip), 'session_revoked');
  await auth.logout({ refreshToken: t1.refreshToken }, ip);
  assert.ok(revoked.includes(sid));
  assert.is(audit.filter((e) => e.type === 'auth.logged_out').length, 1);
  assert.is(audit.filter((e) => e.type === 'auth.token_reused').length, 0);
  await rejectsWithCode(() => auth.logout({ refreshToken: `${sid}.${'A'.repeat(43)}` }, ip), 'unauthorized');
  await rejectsWithCode(() => auth.logout({ refreshToken: 'not-a-token' }, ip), 'unauthorized');
  await rejectsWithCode(() => auth.refresh({ refreshToken: 'not-a-token' }, ip), 'unauthorized');
});

test('a token answered from the verified-token cache is still refused at once when its session is revoked', async () => {
  const { auth, tokens } = harness();
  const session = await auth.guest({ displayName: 'Cached' }, ip);
  const other = await auth.guest({ displayName: 'Bystander' }, ip);
  for (let i = 0; i < 3; i++) await Promise.all([auth.authenticate(session.accessToken), auth.authenticate(other.accessToken)]);
  const before = tokens.stats();
  assert.is(before.checked, 2, 'each token was checked in full once');
  await auth.logout({ refreshToken: session.refreshToken }, ip);
  // Both tokens are answered by the cache now; only the revoked session is refused.
  const [revoked, alive] = await Promise.allSettled([auth.authenticate(session.accessToken), auth.authenticate(other.accessToken)]);
  assert.is(codeOf(revoked.status === 'rejected' ? revoked.reason : 'fulfilled'), 'session_revoked');
  assert.is(alive.status, 'fulfilled');
  assert.equal(tokens.stats(), { ...before, cached: before.cached + 2 });
});

test('a session ends at its absolute lifetime however often it is refreshed', async () => {
  const { auth, clock } = harness({ SESSION_MAX_AGE_SECONDS: '120', REFRESH_TOKEN_TTL_SECONDS: '60' });
  const session = await auth.guest({ displayName: 'Mortal' }, ip);
  assert.ok(session.expiresIn <= 120);
  clock.offsetMs = 50_000;
  const t1 = await auth.refresh({ refreshToken: session.refreshToken }, ip);
  clock.offsetMs = 100_000;
  const t2 = await auth.refresh({ refreshToken: t1.refreshToken }, ip);
  assert.ok(t2.expiresIn <= 20, `access token capped at the session end, got ${t2.expiresIn}`);
  clock.offsetMs = 121_000;
  await rejectsWithCode(() => auth.refresh({ refreshToken: t2.refreshToken }, ip), 'unauthorized');
});

test('every auth key has a TTL within the session lifetime, and Redis, logs and audit events hold no token, password or hash', async () => {
  const { auth, logs, audit } = harness();
  const password = 'very secret password';
  const a = await auth.register({ username: 'ttl_user', password }, ip);
  const b = await auth.refresh({ refreshToken: a.refreshToken }, ip);
  await auth.login({ username: 'ttl_user', password }, ip);
  await auth.logout({ refreshToken: b.refreshToken }, ip);
  const redis = ctx.redis();
  const keys = await redis.keys(`${ctx.keyPrefix}auth:*`);
  assert.ok(keys.length >= 4);
  const secrets = [a.refreshToken.split('.')[1]!, b.refreshToken.split('.')[1]!, a.accessToken, b.accessToken, password];
  const hash = (await ctx.db().selectFrom('users').select('password_hash').where('id', '=', a.user.id).executeTakeFirstOrThrow()).password_hash!;
  for (const key of keys) {
    const ttl = await redis.pttl(key);
    assert.ok(ttl > 0 && ttl <= 90 * 86_400_000, `${key} has TTL ${ttl}`);
    const dump = JSON.stringify(await redis.hgetall(key)) + key;
    for (const s of [...secrets, hash]) assert.not.ok(dump.includes(s), `${key} holds a secret`);
  }
  const text = logs() + JSON.stringify(audit);
  for (const s of [...secrets, hash, 'scrypt$']) assert.not.ok(text.includes(s), 'a secret in the logs');
  assert.match(logs(), '"msg":"auth.signed_in"');
  assert.match(logs(), '"msg":"auth.logged_out"');
});

test('login attempts are limited per username and address, and per address; a success resets the username count', async () => {
  const { auth, audit } = harness({ AUTH_RATE_LOGIN_USER_IP: '3/60', AUTH_RATE_LOGIN_IP: '8/60' });
  await auth.register({ username: 'limited', password: 'the real password' }, ip);
  for (let i = 0; i < 2; i++) await rejectsWithCode(() => auth.login({ username: 'limited', password: 'wrong password' }, ip), 'invalid_credentials');
  await auth.login({ username: 'limited', password: 'the real password' }, ip);
  for (let i = 0; i < 3; i++) await rejectsWithCode(() => auth.login({ username: 'LIMITED', password: 'wrong password' }, ip), 'invalid_credentials');
  const err = (await rejectsWithCode(() => auth.login({ username: 'limited', password: 'the real password' }, ip), 'rate_limited')) as AppError;
  assert.ok(err.retryAfterMs! > 0 && err.retryAfterMs! <= 60_000);
  // Another address is not affected; another username from the same address is, by the per-address limit.
  await auth.login({ username: 'limited', password: 'the real password' }, { address: '192.0.2.11' });
  await rejectsWithCode(() => auth.login({ username: 'someone', password: 'wrong password' }, ip), 'invalid_credentials');
  await rejectsWithCode(() => auth.login({ username: 'someone', password: 'wrong password' }, ip), 'rate_limited');
  assert.ok(audit.some((e) => e.type === 'auth.rate_limited'));
});

test('guest and account creation are limited per address', async () => {
  const { auth } = harness({ AUTH_RATE_GUEST_IP: '2/60', AUTH_RATE_REGISTER_IP: '1/60' });
  await auth.guest({ displayName: 'G1' }, ip);
  await auth.guest({ displayName: 'G2' }, ip);
  await rejectsWithCode(() => auth.guest({ displayName: 'G3' }, ip), 'rate_limited');
  await auth.guest({ displayName: 'G3' }, { address: '192.0.2.99' });
  await auth.register({ username: 'reg_one', password: 'password-one' }, ip);
  await rejectsWithCode(() => auth.register({ username: 'reg_two', password: 'password-two' }, ip), 'rate_limited');
  const rl = await ctx.redis().keys(`${ctx.keyPrefix}rl:*`);
  assert.ok(rl.length > 0);
  for (const key of rl) assert.ok((await ctx.redis().pttl(key)) > 0, `${key} has a TTL`);
});

test('an audit callback that throws never fails a sign-in', async () => {
  const config = ctx.configWith({});
  const redis = ctx.redis();
  const keys = createKeys(config.redis.keyPrefix);
  const auth = createAuthService({
    config: config.auth,
    logger: createLogger({ log: { level: 'silent' }, env: 'test' }),
    users: createUserRepository({ db: ctx.db() }),
    tokens: createTokenService({ config: config.auth, keys: () => signingKeys }),
    refresh: createRefreshStore({ scripts: createScripts(redis), keys, config: config.auth }),
    sessions: createSessionCheck({ scripts: createScripts(redis), keys }),
    limits: createAuthRateLimits({ redis, keys, limits: config.auth.rateLimits }),
    backoff: createLoginBackoff({ redis, scripts: createScripts(redis), keys, config: config.auth }),
    signingKeys: () => signingKeys,
    audit: () => {
      throw new Error('log stream down');
    },
  });
  const session = await auth.guest({ displayName: 'Robust' }, ip);
  assert.ok(session.accessToken);
});

test('with Redis down, sign-in, refresh and authentication answer unavailable, never internal', async () => {
  const owned = await startRedisServer();
  const config = ctx.configWith({ REDIS_URL: owned.url, REDIS_COMMAND_TIMEOUT_MS: '300' });
  const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
  const redis = createRedisClient(config, logger, 'command', { enableOfflineQueue: false, retryStrategy: () => 200 });
  try {
    await redis.connect();
    const keys = createKeys(config.redis.keyPrefix);
    const auth = createAuthService({
      config: config.auth,
      logger,
      users: createUserRepository({ db: ctx.db() }),
      tokens: createTokenService({ config: config.auth, keys: () => signingKeys }),
      refresh: createRefreshStore({ scripts: createScripts(redis), keys, config: config.auth }),
      sessions: createSessionCheck({ scripts: createScripts(redis), keys }),
      limits: createAuthRateLimits({ redis, keys, limits: config.auth.rateLimits }),
      backoff: createLoginBackoff({ redis, scripts: createScripts(redis), keys, config: config.auth }),
      signingKeys: () => signingKeys,
    });
    const session = await auth.guest({ displayName: 'Before' }, ip);
    await owned.kill();
    await rejectsWithCode(() => auth.refresh({ refreshToken: session.refreshToken }, ip), 'unavailable');
    await rejectsWithCode(() => auth.authenticate(session.accessToken), 'unavailable');
    await rejectsWithCode(() => auth.guest({ displayName: 'During' }, ip), 'unavailable');
    await rejectsWithCode(() => auth.login({ username: 'whoever', password: 'whatever123' }, ip), 'unavailable');
  } finally {
    await closeRedis(redis);
    await owned.dispose();
  }
});

test.run();
