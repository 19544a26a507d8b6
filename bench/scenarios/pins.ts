/**
 * PIN allocation: `pins.allocate` (a crypto-random draw and one
 * `SET pin roomId EX ttl NX` per attempt, retried on a live PIN) from
 * CONCURRENCY concurrent callers, against `redis-benchmark` running
 * `SET key val NX EX` at the same concurrency over the same key space.
 * The room-row insert is left out (it is PostgreSQL's cost, not the PIN's).
 *
 *   taskset -c 0 node --import tsx bench/scenarios/pins.ts
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomUUID } from 'node:crypto';
import { createLogger } from '../../server/logger.ts';
import { closeRedis, connectRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { createPinStore } from '../../server/rooms/pins.ts';
import { createTestContext } from '../../tests/support/context.ts';
import { redisBenchmark, round2 } from '../lib/procs.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const CONCURRENCY = 50;
const DURATION_MS = 3000;
const BENCH_REQUESTS = 100_000;

async function measure(concurrency: number, op: () => Promise<unknown>, durationMs: number) {
  let done = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await op();
        done++;
      }
    }),
  );
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  return { perSecond: Math.round((done / ms) * 1000), cpu: Math.round(((cpu.user + cpu.system) / 1000 / ms) * 100) };
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const ctx = createTestContext({ LOG_LEVEL: 'silent' });
  const config = ctx.config;
  const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
  const redis = createRedisClient(config, logger, 'bench-pins');
  try {
    await connectRedis(redis, config);
    const keys = createKeys(config.redis.keyPrefix);
    const pins = createPinStore({ redis, scripts: createScripts(redis), keys, config: config.rooms, logger });
    const allocate = () => pins.allocate(randomUUID(), async () => 'inserted');
    await measure(CONCURRENCY, allocate, 500);
    const pinroom = await measure(CONCURRENCY, allocate, DURATION_MS);
    const space = 10 ** config.rooms.pinDigits;
    const baseline = await redisBenchmark(config.redis.url, [
      '-c', String(CONCURRENCY), '-n', String(BENCH_REQUESTS), '-r', String(space),
      'SET', `${config.redis.keyPrefix}bench:pin:__rand_int__`, randomUUID(), 'NX', 'EX', String(config.rooms.pinTtlSeconds),
    ]);
    const rows: BenchRow[] = [
      {
        metric: `PIN allocations/s, ${CONCURRENCY} concurrent callers, ${config.rooms.pinDigits}-digit PINs`,
        unit: 'ops/s',
        pinroom: pinroom.perSecond,
        baseline,
        baselineName: `redis-benchmark -c ${CONCURRENCY}: SET key val NX EX over ${space} keys`,
        ratio: round2(pinroom.perSecond / baseline),
        target: 0.5,
        cpu: { server: pinroom.cpu },
        note: 'one allocation = crypto-random draw + SET NX EX through ioredis (one connection), retried on a live PIN',
      },
    ];
    return { scenario: 'PIN allocation', rows };
  } finally {
    await closeRedis(redis);
    await ctx.cleanup();
  }
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
