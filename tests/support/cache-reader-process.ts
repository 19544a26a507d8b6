/**
 * A second process for cross-process cache tests: builds a loader against the
 * database and key prefix given in its environment, prints `ready`, waits for
 * `go` on stdin, runs `READS` concurrent reads of `USER_ID`, prints one JSON
 * line `{ queries, names, stale }` and exits.
 *
 *   node --import tsx tests/support/cache-reader-process.ts
 *   env: DATABASE_URL, REDIS_URL, KEY_PREFIX, USER_ID, READS, SLOW_MS
 */
import { createInterface } from 'node:readline';
import { loadConfig } from '../../server/config.ts';
import { createDb } from '../../server/db/database.ts';
import { createLogger } from '../../server/logger.ts';
import { createMetrics } from '../../server/metrics.ts';
import { closeRedis, connectRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { createSlowUserLoader } from './cache.ts';
import { createQueryCounter } from './query-counter.ts';

const config = loadConfig(process.env);
const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
const counter = createQueryCounter();
const { db } = createDb(config, logger, { plugins: [counter.plugin] });
const redis = createRedisClient(config, logger, 'command');
await connectRedis(redis, config);
const users = createSlowUserLoader(
  { db, redis, scripts: createScripts(redis), keys: createKeys(config.redis.keyPrefix), metrics: createMetrics(), config },
  Number(process.env.SLOW_MS ?? 0),
);
const id = process.env.USER_ID!;
const reads = Number(process.env.READS ?? 1000);

const lines = createInterface({ input: process.stdin });
process.stdout.write('ready\n');
for await (const line of lines) {
  if (line.trim() === 'go') break;
}
lines.close();
const results = await Promise.all(Array.from({ length: reads }, () => users.get(id)));
process.stdout.write(
  `${JSON.stringify({ queries: counter.countFrom('users'), names: [...new Set(results.map((r) => r.value?.name ?? null))], stale: results.some((r) => r.stale) })}\n`,
);
await closeRedis(redis);
await db.destroy();
