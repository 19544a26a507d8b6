import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { RedisClient } from '../../server/redis/connections.ts';
import { sql } from 'kysely';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createUserProfileLoader, type LoaderDeps } from '../../server/cache/loaders.ts';
import type { Config } from '../../server/config.ts';
import { createDb, type Db } from '../../server/db/database.ts';
import { AppError } from '../../server/errors.ts';
import { createLogger } from '../../server/logger.ts';
import { createMetrics, type Metrics } from '../../server/metrics.ts';
import { closeRedis, connectRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { rejectsWithCode } from '../support/assert.ts';
import { counterValue, insertUser } from '../support/cache.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { createQueryCounter, type QueryCounter } from '../support/query-counter.ts';
import { freePort, startRedisServer, type OwnedRedis } from '../support/redis-server.ts';

const test = suite('cache/faults');
/**
 * How long past its TTL an entry may be served stale. It must exceed the TTL's
 * jitter (±10% of 300 s) for one clock to be past every jittered TTL and
 * within every stale window: `pastTtl()` is that clock, `pastStale()` one past
 * every window. (With 60 s, past 330 s and within 270 + 60 s cannot both hold:
 * about one read in sixty fell outside.)
 */
const HARD_STALE_SECONDS = 600;
const pastTtl = () => Date.now() + ctx.config.cache.userTtlSeconds * 1100 + 1000;
const pastStale = () => pastTtl() + HARD_STALE_SECONDS * 1000;
const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
let ctx: TestContext;
let counter: QueryCounter;
let db: Db;
let owned: OwnedRedis | undefined;
const clients: RedisClient[] = [];
const dbs: Db[] = [];

test.before(async () => {
  ctx = createTestContext({ REDIS_COMMAND_TIMEOUT_MS: '300', CACHE_HARD_STALE_SECONDS: String(HARD_STALE_SECONDS) });
  await ctx.migrate();
  counter = createQueryCounter();
  db = ctx.db().withPlugin(counter.plugin);
});
test.after(async () => {
  await Promise.allSettled(clients.map((c) => closeRedis(c, 200)));
  await Promise.allSettled(dbs.map((d) => d.destroy()));
  await owned?.dispose();
  await ctx.cleanup();
});

async function redisClient(config: Config): Promise<RedisClient> {
  const client = createRedisClient(config, logger, 'command');
  clients.push(client);
  await connectRedis(client, config);
  return client;
}

function deps(redis: RedisClient, metrics: Metrics, more: Partial<LoaderDeps> = {}): LoaderDeps {
  return { db, redis, scripts: createScripts(redis), keys: createKeys(ctx.keyPrefix), metrics, config: ctx.config, logger, ...more };
}

/** A Kysely whose PostgreSQL is a closed port: every query fails to connect. */
async function deadDb(): Promise<Db> {
  const config = ctx.configWith({ DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/pinroom_gone`, DB_CONNECT_TIMEOUT_MS: '1000' });
  const dead = createDb(config, logger).db;
  dbs.push(dead);
  return dead;
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Read `id` through `loader` until its entry is in Redis: the precondition of a stale read, checked rather than assumed. */
async function cachedBy(loader: { get(id: string): Promise<unknown> }, redis: RedisClient, id: string): Promise<void> {
  await waitFor(async () => {
    await loader.get(id);
    return (await redis.exists(createKeys(ctx.keyPrefix).cache('user', id))) === 1;
  }, `user ${id} to be cached`);
}

test('with Redis stopped, reads are answered from PostgreSQL, counted; when it comes back with its data the invalidation made meanwhile is retried and caching resumes', async () => {
  owned = await startRedisServer();
  const config = ctx.configWith({ REDIS_URL: owned.url });
  const redis = await redisClient(config);
  const metrics = createMetrics();
  const users = createUserProfileLoader(deps(redis, metrics, { config }));
  const id = await insertUser(db, 'Before outage');
  assert.is((await users.get(id)).value?.name, 'Before outage');
  assert.ok(await redis.exists(createKeys(ctx.keyPrefix).cache('user', id)));

  // Redis goes down with its data on disk: the cached 'Before outage' comes back with it.
  const admin = new Redis(owned.url, { maxRetriesPerRequest: 1 });
  await admin.set(`${ctx.keyPrefix}survivor`, 'yes');
  await admin.save();
  admin.disconnect();
  await owned.kill();
  counter.reset();
  const started = Date.now();
  const during = await users.get(id);
  assert.equal(during, { value: { ...during.value!, name: 'Before outage' }, stale: false });
  assert.ok(Date.now() - started < 10_000, 'bounded, not hung on Redis');
  assert.is(counter.countFrom('users'), 1, 'read from PostgreSQL');
  assert.ok((await counterValue(metrics.cache.errors, { loader: 'user', source: 'redis' })) >= 1, 'counted');

  // A write while Redis is down: its invalidation cannot reach Redis, but this process reads the new row.
  await db.updateTable('users').set({ display_name: 'During outage' }).where('id', '=', id).execute();
  await users.invalidate(id);
  assert.is((await users.get(id)).value?.name, 'During outage');
  const many = await users.getMany([id, randomUUID()]);
  assert.equal([...many.values()].map((l) => l.value?.name), ['During outage']);

  await owned.start();
  assert.is(await redis.get(`${ctx.keyPrefix}survivor`), 'yes', 'Redis came back with its data');
  await waitFor(() => redis.status === 'ready', 'the client to reconnect');
  // The entry Redis came back with is the one from before the write; the
  // invalidation retried on reconnect removes it, so it is never served.
  await waitFor(async () => {
    assert.is((await users.get(id)).value?.name, 'During outage', 'never the entry from before the outage');
    const cached = await redis.get(createKeys(ctx.keyPrefix).cache('user', id));
    return cached !== null && cached.includes('During outage');
  }, 'the new value to be cached');
  counter.reset();
  assert.is((await users.get(id)).value?.name, 'During outage');
  assert.is(counter.countFrom('users'), 0, 'a hit again');
});

test('with Redis hung, a read is answered from PostgreSQL after the command timeout', async () => {
  owned ??= await startRedisServer();
  const config = ctx.configWith({ REDIS_URL: owned.url });
  const redis = await redisClient(config);
  const metrics = createMetrics();
  const users = createUserProfileLoader(deps(redis, metrics, { config }));
  const id = await insertUser(db, 'Hung');
  await users.get(id);
  owned.pause();
  try {
    const started = Date.now();
    assert.is((await users.get(id)).value?.name, 'Hung');
    assert.ok(Date.now() - started < 10_000, 'bounded by the command timeout, not hung');
    assert.ok((await counterValue(metrics.cache.errors, { loader: 'user', source: 'redis' })) >= 1);
  } finally {
    owned.resume();
  }
});

test('with PostgreSQL unreachable, an expired entry is served marked stale, and fresh reads refuse it', async () => {
  const redis = ctx.redis();
  const metrics = createMetrics();
  const healthy = createUserProfileLoader(deps(redis, metrics));
  const id = await insertUser(db, 'Cached');
  await cachedBy(healthy, redis, id);
  const dead = await deadDb();

  // Within its TTL the entry is simply a hit: PostgreSQL is not needed.
  const now = createUserProfileLoader(deps(redis, metrics, { db: dead }));
  assert.equal((await now.get(id)).stale, false);

  // Past its TTL (the clock moved on), within the hard staleness: stale, and said so.
  const later = createUserProfileLoader(deps(redis, metrics, { db: dead, now: pastTtl }));
  const stale = await later.get(id);
  assert.equal(stale, { value: { ...stale.value!, name: 'Cached' }, stale: true });
  assert.is(await counterValue(metrics.cache.stale, { loader: 'user' }), 1);
  assert.ok((await counterValue(metrics.cache.errors, { loader: 'user', source: 'db' })) >= 1);
  const refused = (await rejectsWithCode(() => later.get(id, { fresh: true }), 'unavailable')) as AppError;
  assert.instance(refused, AppError);
  assert.is(refused.retryable, true);
  await rejectsWithCode(() => later.getMany([id], { fresh: true }), 'unavailable');
  assert.equal((await later.getMany([id])).get(id)?.stale, true);

  // Past the hard staleness: nothing may be served.
  const muchLater = createUserProfileLoader(deps(redis, metrics, { db: dead, now: pastStale }));
  await rejectsWithCode(() => muchLater.get(id), 'unavailable');
});

test('with PostgreSQL unreachable, an id that is not cached is unavailable, never "not found"', async () => {
  const users = createUserProfileLoader(deps(ctx.redis(), createMetrics(), { db: await deadDb() }));
  await rejectsWithCode(() => users.get(randomUUID()), 'unavailable');
  await rejectsWithCode(() => users.getMany([randomUUID(), randomUUID()]), 'unavailable');
});

test('with PostgreSQL terminated mid-session and unreachable, cached reads degrade to stale', async () => {
  const redis = ctx.redis();
  const id = await insertUser(db, 'Terminated');
  // A pool of its own, whose backends are killed, then pointed nowhere: its next connect fails.
  const config = ctx.configWith({ DB_CONNECT_TIMEOUT_MS: '1000' });
  const handle = createDb(config, logger);
  dbs.push(handle.db);
  const users = createUserProfileLoader(deps(redis, createMetrics(), { db: handle.db }));
  await cachedBy(users, redis, id);
  // Kill every backend of the database but this query's own (the loader's pool included)...
  await sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`.execute(db);
  // ...and make the pool's reconnects land on a closed port, as when the server is gone.
  (handle.pool.options as { connectionString?: string }).connectionString = `postgres://postgres@127.0.0.1:${await freePort()}/pinroom_gone`;
  const later = createUserProfileLoader(deps(redis, createMetrics(), { db: handle.db, now: pastTtl }));
  const read = await later.get(id);
  assert.is(read.stale, true);
  assert.is(read.value?.name, 'Terminated');
});

test.run();
