/**
 * The error counters behind the dashboard's Redis/PostgreSQL panel, against
 * real servers: failed commands and queries, and connections that cannot be
 * opened, each counted once; NOSCRIPT (answered by ioredis itself) is not a failure.
 */
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { Registry } from 'prom-client';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createDb } from '../../server/db/database.ts';
import { createLogger } from '../../server/logger.ts';
import { createInstruments } from '../../server/observability/instruments.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { until } from '../support/faults.ts';
import { BASE_PG_URL, BASE_REDIS_URL } from '../support/leftovers.ts';
import { freePort } from '../support/redis-server.ts';

const test = suite('observability/error counters');
const logger = createLogger({ env: 'test', log: { level: 'silent' } });
let ctx: TestContext;
test.before(() => {
  ctx = createTestContext();
});
test.after(async () => {
  await ctx.cleanup();
});

/** Resolves when `promise` rejects; fails the test when it resolves. */
async function rejects(promise: Promise<unknown>): Promise<void> {
  const outcome = await promise.then(
    () => 'resolved',
    () => 'rejected',
  );
  assert.is(outcome, 'rejected');
}

async function value(registry: Registry, name: string, kind: string): Promise<number> {
  const metric = await registry.getSingleMetric(name)!.get();
  return metric.values.find((v) => v.labels.kind === kind)?.value ?? Number.NaN;
}

test('every error series is there from the start, at 0', async () => {
  const registry = new Registry();
  createInstruments({ registry });
  const text = await registry.metrics();
  for (const line of ['pinroom_redis_errors_total{kind="command"} 0', 'pinroom_redis_errors_total{kind="connection"} 0', 'pinroom_pg_errors_total{kind="query"} 0', 'pinroom_pg_errors_total{kind="connection"} 0']) {
    assert.ok(text.includes(line), line);
  }
});

test('a Redis command that fails counts once; a NOSCRIPT that ioredis answers by itself does not', async () => {
  const registry = new Registry();
  const instruments = createInstruments({ registry });
  const redis = new Redis(BASE_REDIS_URL, { lazyConnect: true });
  instruments.observeRedis(redis);
  try {
    await redis.connect();
    await rejects(redis.call('PINROOM_NO_SUCH_COMMAND'));
    // A script Redis has never seen (its body names this run): ioredis's EVALSHA meets NOSCRIPT, then it sends EVAL.
    redis.defineCommand('pinroomInstrumentsProbe', { numberOfKeys: 0, lua: `return '${ctx.id}'` });
    assert.is(await (redis as unknown as { pinroomInstrumentsProbe(): Promise<string> }).pinroomInstrumentsProbe(), ctx.id);
    assert.is(await value(registry, 'pinroom_redis_errors_total', 'command'), 1);
  } finally {
    redis.disconnect();
  }
});

test('a Redis connection that cannot be opened counts as a connection error', async () => {
  const registry = new Registry();
  const instruments = createInstruments({ registry });
  const redis = new Redis({ port: await freePort(), host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  instruments.countRedisErrors(redis);
  try {
    await rejects(redis.connect());
    assert.ok((await value(registry, 'pinroom_redis_errors_total', 'connection')) >= 1);
  } finally {
    redis.disconnect();
  }
});

test('a failed PostgreSQL query counts as a query error, an unreachable server as a connection error', async () => {
  const registry = new Registry();
  const instruments = createInstruments({ registry });
  const { db, pool } = createDb(ctx.configWith({ DATABASE_URL: BASE_PG_URL }), logger, { log: instruments.pgLog });
  instruments.observePool(pool);
  try {
    await rejects(sql`select * from pinroom_no_such_table`.execute(db));
    assert.is(await value(registry, 'pinroom_pg_errors_total', 'query'), 1);
    await sql`select 1`.execute(db);
    assert.is(await value(registry, 'pinroom_pg_errors_total', 'query'), 1, 'a query that succeeds is not counted');
  } finally {
    await db.destroy();
  }
  const closed = new URL(BASE_PG_URL);
  closed.port = String(await freePort());
  const down = createDb(ctx.configWith({ DATABASE_URL: closed.toString() }), logger, { log: instruments.pgLog });
  instruments.observePool(down.pool);
  try {
    await rejects(sql`select 1`.execute(down.db));
    await until(async () => (await value(registry, 'pinroom_pg_errors_total', 'connection')) >= 1, 'the connection error counted');
  } finally {
    await down.db.destroy();
  }
});

test.run();
