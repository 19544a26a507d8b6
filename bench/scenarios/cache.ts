/**
 * Cache-aside loader, side by side with its baselines in the same run:
 *
 * - hit path: `loaders.users.get(id)` on a cached id against a raw ioredis
 *   GET (+ JSON.parse) of the same payload;
 * - miss path: `get(id)` on an uncached id (GET, lease script, query, fill
 *   script) against raw pg running the same SQL;
 * - stampede: database queries caused by 1,000 concurrent reads of a hot key
 *   whose entry just expired, against naive cache-aside (GET, on a miss query
 *   and SET).
 *
 * Uses its own database and key prefix and removes both.
 *
 *   node --import tsx bench/scenarios/cache.ts
 */
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { createUserProfileLoader } from '../../server/cache/loaders.ts';
import { createDb } from '../../server/db/database.ts';
import { createLogger } from '../../server/logger.ts';
import { createMetrics } from '../../server/metrics.ts';
import { closeRedis, connectRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { createTestContext } from '../../tests/support/context.ts';
import { createQueryCounter } from '../../tests/support/query-counter.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const USERS = 6000;
const HOT = 256;
const HIT_CONCURRENCY = 32;
const MISS_CONCURRENCY = 8;
const HIT_DURATION_MS = 2000;
const SEQUENTIAL_HITS = 3000;
const MISSES = 1200;
const SEQUENTIAL_MISSES = 600;
const STAMPEDE = 1000;

interface Measured {
  ops: number;
  ms: number;
  cpu: number;
}

/** Run `op(i)` from `concurrency` workers, for `durationMs` or until `total` ops, whichever comes first. */
async function measure(concurrency: number, op: (i: number) => Promise<unknown>, limit: { durationMs?: number; total?: number }): Promise<Measured> {
  let next = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const end = start + (limit.durationMs ?? Number.POSITIVE_INFINITY);
  const total = limit.total ?? Number.POSITIVE_INFINITY;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total && performance.now() < end) await op(next++);
    }),
  );
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  return { ops: next, ms, cpu: Math.round(((cpu.user + cpu.system) / 1000 / ms) * 100) };
}

const perSecond = (m: Measured) => Math.round((m.ops / m.ms) * 1000);
const microsPerOp = (m: Measured) => Math.round(((m.ms * 1000) / m.ops) * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;

const scenario: Scenario = async (): Promise<BenchResult> => {
  const ctx = createTestContext({ LOG_LEVEL: 'silent', DB_POOL_MAX: '10' });
  const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
  await ctx.migrate();
  const config = ctx.config;
  const counter = createQueryCounter();
  const { db } = createDb(config, logger, { plugins: [counter.plugin] });
  const redis = createRedisClient(config, logger, 'bench-loader');
  const raw = createRedisClient(config, logger, 'bench-raw');
  const pool = new pg.Pool({ connectionString: config.db.url, max: config.db.poolMax });
  const keys = createKeys(config.redis.keyPrefix);
  try {
    await Promise.all([connectRedis(redis, config), connectRedis(raw, config)]);
    const scripts = createScripts(redis);
    const users = createUserProfileLoader({ db, redis, scripts, keys, metrics: createMetrics(), config });

    const ids: string[] = [];
    for (let i = 0; i < USERS; i += 1000) {
      const rows = await db
        .insertInto('users')
        .values(Array.from({ length: Math.min(1000, USERS - i) }, (_, j) => ({ display_name: `Player ${i + j}`, username: `player${i + j}`, password_hash: 'x', kind: 'registered' as const })))
        .returning('id')
        .execute();
      ids.push(...rows.map((r) => r.id));
    }
    const hot = ids.slice(0, HOT);
    let cold = HOT; // next id never read through the loader

    // ---- hit path: same payload under a raw key
    await users.getMany(hot);
    const payloads = await redis.mget(hot.map((id) => keys.cache('user', id)));
    const rawKey = (id: string) => `${config.redis.keyPrefix}bench:raw:{${id}}`;
    await raw.mset(Object.fromEntries(hot.map((id, i) => [rawKey(id), payloads[i]!])));
    const rawGet = async (id: string) => {
      const text = await raw.get(rawKey(id));
      return JSON.parse(text!.slice(text!.indexOf(':') + 1)) as unknown;
    };
    // Reads walk the hot ids in turn: with far more ids than workers, concurrent reads do not share an id (no single-flight advantage).
    const hotId = (i: number) => hot[i % HOT]!;
    await measure(HIT_CONCURRENCY, (i) => users.get(hotId(i)), { total: 2000 });
    await measure(HIT_CONCURRENCY, (i) => rawGet(hotId(i)), { total: 2000 });
    const hitLoader = await measure(HIT_CONCURRENCY, (i) => users.get(hotId(i)), { durationMs: HIT_DURATION_MS });
    const hitRaw = await measure(HIT_CONCURRENCY, (i) => rawGet(hotId(i)), { durationMs: HIT_DURATION_MS });
    const hitLoaderSeq = await measure(1, (i) => users.get(hotId(i)), { total: SEQUENTIAL_HITS });
    const hitRawSeq = await measure(1, (i) => rawGet(hotId(i)), { total: SEQUENTIAL_HITS });

    // ---- miss path: the loader's own SQL, run by raw pg
    const compiled = (id: string) => db.selectFrom('users').select(['id', 'display_name', 'kind', 'username']).where('id', 'in', [id]).compile();
    const sqlText = compiled(ids[0]!).sql;
    const rawQuery = async (id: string) => (await pool.query(sqlText, [id])).rows[0] as unknown;
    const nextCold = () => ids[cold++]!;
    await measure(MISS_CONCURRENCY, () => users.get(nextCold()), { total: 200 });
    await measure(MISS_CONCURRENCY, (i) => rawQuery(ids[i % ids.length]!), { total: 200 });
    const missLoader = await measure(MISS_CONCURRENCY, () => users.get(nextCold()), { total: MISSES });
    const missRaw = await measure(MISS_CONCURRENCY, (i) => rawQuery(ids[(i * 7) % ids.length]!), { total: MISSES });
    const missLoaderSeq = await measure(1, () => users.get(nextCold()), { total: SEQUENTIAL_MISSES });
    const missRawSeq = await measure(1, (i) => rawQuery(ids[(i * 11) % ids.length]!), { total: SEQUENTIAL_MISSES });
    if (cold > ids.length) throw new Error('not enough cold ids');

    // ---- stampede on an expired hot key
    const shortConfig = ctx.configWith({ CACHE_USER_TTL_SECONDS: '1' });
    const shortLived = createUserProfileLoader({ db, redis, scripts, keys, metrics: createMetrics(), config: shortConfig });
    const star = ids[ids.length - 1]!;
    await shortLived.get(star);
    await new Promise((r) => setTimeout(r, 1300)); // past the 1 s TTL and its +10% jitter
    counter.reset();
    const stampede = await Promise.all(Array.from({ length: STAMPEDE }, () => shortLived.get(star)));
    const loaderQueries = counter.countFrom('users');
    if (stampede.some((r) => r.value?.id !== star)) throw new Error('stampede read a wrong value');

    let naiveQueries = 0;
    const naiveKey = `${config.redis.keyPrefix}bench:naive:{${star}}`;
    const naiveGet = async (id: string) => {
      const cached = await raw.get(naiveKey);
      if (cached !== null) return JSON.parse(cached) as unknown;
      naiveQueries++;
      const row = await rawQuery(id);
      await raw.set(naiveKey, JSON.stringify(row), 'EX', 1);
      return row;
    };
    await naiveGet(star);
    await new Promise((r) => setTimeout(r, 1300));
    naiveQueries = 0;
    await Promise.all(Array.from({ length: STAMPEDE }, () => naiveGet(star)));

    const rows: BenchRow[] = [
      {
        metric: `hit path throughput, ${HIT_CONCURRENCY} concurrent reads of distinct cached ids`,
        unit: 'ops/s',
        pinroom: perSecond(hitLoader),
        baseline: perSecond(hitRaw),
        baselineName: 'raw ioredis GET + JSON.parse of the same payload',
        ratio: round2(perSecond(hitLoader) / perSecond(hitRaw)),
        target: 0.8,
        cpu: { server: hitLoader.cpu },
      },
      {
        metric: 'hit path latency, sequential',
        unit: 'µs/op',
        pinroom: microsPerOp(hitLoaderSeq),
        baseline: microsPerOp(hitRawSeq),
        baselineName: 'raw ioredis GET + JSON.parse of the same payload',
        ratio: round2(microsPerOp(hitRawSeq) / microsPerOp(hitLoaderSeq)),
        lowerIsBetter: true,
      },
      {
        metric: `miss path throughput, ${MISS_CONCURRENCY} concurrent reads of uncached ids`,
        unit: 'ops/s',
        pinroom: perSecond(missLoader),
        baseline: perSecond(missRaw),
        baselineName: 'raw pg running the same SQL',
        ratio: round2(perSecond(missLoader) / perSecond(missRaw)),
        target: 0.85,
        cpu: { server: missLoader.cpu },
        note: 'a miss is GET + lease script + the query + fill script: three Redis round trips around the one PostgreSQL query the baseline makes',
      },
      {
        metric: 'miss path latency, sequential',
        unit: 'µs/op',
        pinroom: microsPerOp(missLoaderSeq),
        baseline: microsPerOp(missRawSeq),
        baselineName: 'raw pg running the same SQL',
        ratio: round2(microsPerOp(missRawSeq) / microsPerOp(missLoaderSeq)),
        lowerIsBetter: true,
      },
      {
        metric: `database queries for ${STAMPEDE} concurrent reads of an expired hot key`,
        unit: 'queries',
        pinroom: loaderQueries,
        baseline: naiveQueries,
        baselineName: 'naive cache-aside (GET, on a miss query then SET EX)',
        ratio: round2(naiveQueries / Math.max(1, loaderQueries)),
        lowerIsBetter: true,
        goal: { text: '1 query per process', met: loaderQueries <= 1 },
      },
    ];
    return { scenario: 'cache', rows };
  } finally {
    await Promise.allSettled([closeRedis(redis), closeRedis(raw), db.destroy(), pool.end()]);
    await ctx.cleanup();
  }
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
