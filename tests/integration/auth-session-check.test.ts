import { randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createRefreshStore } from '../../server/auth/refresh-store.ts';
import { createSessionCheck, MAX_BATCH, type SessionState } from '../../server/auth/session-check.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts, type Scripts } from '../../server/redis/scripts.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startRedisServer } from '../support/redis-server.ts';
import { closeRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createLogger } from '../../server/logger.ts';

// The session check against the real Redis. `scripts` is the real script
// runner, wrapped only to count the calls that reach Redis.
const test = suite('auth/session-check');
let ctx: TestContext;
let scripts: Scripts;
let calls: { name: string; keys: number }[] = [];
let refresh: ReturnType<typeof createRefreshStore>;

test.before(async () => {
  ctx = createTestContext();
  const real = createScripts(ctx.redis());
  scripts = {
    ...real,
    run: (name, keys, args) => {
      calls.push({ name, keys: keys.length });
      return real.run(name, keys, args);
    },
    // The batched read is a per-key script: one call on a single Redis (this one).
    runPerKey: (name, keys, args) => {
      calls.push({ name, keys: keys.length });
      return real.runPerKey(name, keys, args);
    },
  };
  refresh = createRefreshStore({ scripts: real, keys: createKeys(ctx.keyPrefix), config: ctx.config.auth });
});
test.after(async () => {
  await ctx.cleanup();
});
test.before.each(() => {
  calls = [];
});

/** `count` sessions of each state: active, revoked (logged out), missing (never opened). */
async function sessions(count: number): Promise<{ id: string; state: SessionState }[]> {
  const opened = await Promise.all(Array.from({ length: 2 * count }, () => refresh.issue(randomUUID())));
  await Promise.all(opened.slice(count).map((s) => refresh.revoke(s.token, 'logout')));
  return [
    ...opened.slice(0, count).map((s) => ({ id: s.sessionId, state: 'active' as const })),
    ...opened.slice(count).map((s) => ({ id: s.sessionId, state: 'revoked' as const })),
    ...Array.from({ length: count }, () => ({ id: randomUUID(), state: 'missing' as const })),
  ].sort(() => Math.random() - 0.5);
}

test('checks asked for in one event-loop turn are read with one script call, each answered with its own session\'s state', async () => {
  const check = createSessionCheck({ scripts, keys: createKeys(ctx.keyPrefix) });
  const all = await sessions(20);
  calls = [];
  const states = await Promise.all(all.map((s) => check.state(s.id)));
  assert.equal(states, all.map((s) => s.state));
  assert.equal(calls, [{ name: 'session-states', keys: 60 }]);
  // Checks of later turns are later reads: each sees what changed before it was asked.
  const active = all.find((s) => s.state === 'active')!;
  assert.is(await check.state(active.id), 'active');
  const opened = await refresh.issue(randomUUID());
  assert.is(await check.state(opened.sessionId), 'active');
  await refresh.revoke(opened.token, 'logout');
  assert.is(await check.state(opened.sessionId), 'revoked');
  assert.is(calls.length, 4);
});

test(`states() reads any number of sessions in order, at most ${MAX_BATCH} per script call`, async () => {
  const check = createSessionCheck({ scripts, keys: createKeys(ctx.keyPrefix) });
  const all = await sessions(200);
  calls = [];
  assert.equal(await check.states(all.map((s) => s.id)), all.map((s) => s.state));
  assert.equal(calls.map((c) => c.keys), [MAX_BATCH, MAX_BATCH, 600 - 2 * MAX_BATCH]);
  assert.equal(await check.states([]), []);
});

test('when Redis stops answering, every check of the batch fails with unavailable, and the checks after it read again', async () => {
  const owned = await startRedisServer();
  const config = ctx.configWith({ REDIS_URL: owned.url, REDIS_COMMAND_TIMEOUT_MS: '300' });
  const redis = createRedisClient(config, createLogger({ log: { level: 'silent' }, env: 'test' }), 'command', { enableOfflineQueue: false, retryStrategy: () => 200 });
  try {
    await redis.connect();
    const keys = createKeys(config.redis.keyPrefix);
    const ownScripts = createScripts(redis);
    const store = createRefreshStore({ scripts: ownScripts, keys, config: config.auth });
    const check = createSessionCheck({ scripts: ownScripts, keys });
    const active = await store.issue(randomUUID());
    const revoked = await store.issue(randomUUID());
    await store.revoke(revoked.token, 'logout');
    const ids = [active.sessionId, revoked.sessionId, randomUUID()];
    assert.equal(await Promise.all(ids.map((id) => check.state(id))), ['active', 'revoked', 'missing']);
    owned.pause();
    const failed = await Promise.allSettled(ids.map((id) => check.state(id)));
    assert.equal(failed.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'fulfilled')), ['unavailable', 'unavailable', 'unavailable']);
    owned.resume();
    assert.equal(await Promise.all(ids.map((id) => check.state(id))), ['active', 'revoked', 'missing']);
  } finally {
    await closeRedis(redis);
    await owned.dispose();
  }
});

test.run();
