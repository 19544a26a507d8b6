/**
 * Per-test-file isolation on the shared Redis and PostgreSQL: a fresh database
 * and a fresh key prefix for each context, both removed by `cleanup()`.
 * Tests build their own config from an env map; they never mutate process.env.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Kysely } from 'kysely';
import { loadConfig, type Config } from '../../server/config.ts';
import { createDb, dropDatabase, ensureDatabase, type Db } from '../../server/db/database.ts';
import { migrateToLatest } from '../../server/db/migrate.ts';
import { createLogger } from '../../server/logger.ts';
import { BASE_PG_URL, BASE_REDIS_URL, databaseNameOf, deleteByPrefix, keyPrefixOf, newTestId } from './leftovers.ts';

export { BASE_PG_URL, BASE_REDIS_URL, deleteByPrefix };

/**
 * The per-user limits (events, publishes, signals) raised out of the way, for
 * tests that load one user's sockets on purpose (fault and cluster tests),
 * like their raised SOCKET_EVENTS_PER_SECOND. tests/e2e/abuse-limits.test.ts
 * holds the defaults.
 */
export const RAISED_USER_LIMITS: Readonly<Record<string, string>> = {
  USER_EVENTS_PER_SECOND: '1000000',
  FEED_PUBLISH_RATE_USER_ROOM: '1000000/1',
  ROOM_SIGNAL_RATE_USER: '1000000/1',
};

/**
 * Deadlines for tests about correctness under a burst (uniqueness, capacity),
 * not latency: on a loaded 2-core machine a burst of thousands of requests can
 * wait past the production deadlines, which answer `unavailable` by design
 * (the faults-* tests hold those). Redis command, statement and pool-wait.
 */
export const PATIENT_DEADLINES: Readonly<Record<string, string>> = {
  REDIS_COMMAND_TIMEOUT_MS: '15000',
  DB_STATEMENT_TIMEOUT_MS: '30000',
  DB_CONNECT_TIMEOUT_MS: '30000',
};

export interface TestContext {
  id: string;
  /** Environment for a server process or `loadConfig`: unique database and key prefix. */
  env: Record<string, string>;
  config: Config;
  databaseUrl: string;
  keyPrefix: string;
  /** Create the database and apply migrations. */
  migrate(): Promise<void>;
  /** A Kysely handle on the context's database (closed by `cleanup`). */
  db(): Db;
  /** A plain Redis client for assertions (closed by `cleanup`). */
  redis(): Redis;
  /** Build another config on the same database and prefix with some variables changed. */
  configWith(overrides: Record<string, string>): Config;
  /** Delete every key under the prefix and drop the database. */
  cleanup(): Promise<void>;
}

export function createTestContext(overrides: Record<string, string> = {}): TestContext {
  // Named after the runner's tag for this file, so tests/run.ts can remove them if the file is killed.
  const id = newTestId();
  const url = new URL(BASE_PG_URL);
  url.pathname = `/${databaseNameOf(id)}`;
  const databaseUrl = url.toString();
  const keyPrefix = keyPrefixOf(id);
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    HOST: '127.0.0.1',
    PORT: '0',
    REDIS_URL: BASE_REDIS_URL,
    DATABASE_URL: databaseUrl,
    KEY_PREFIX: keyPrefix,
    // The generated development signing key goes to a temp folder shared by
    // every test server (so tokens verify on all of them), never into the repo.
    AUTH_DATA_DIR: join(tmpdir(), 'pinroom-test-auth'),
    ...overrides,
  };
  const config = loadConfig(env);
  let db: Db | undefined;
  let redis: Redis | undefined;

  return {
    id,
    env,
    config,
    databaseUrl,
    keyPrefix,
    async migrate() {
      await ensureDatabase(config);
      await migrateToLatest(this.db());
    },
    db() {
      db ??= createDb(config, createLogger({ log: { level: 'silent' }, env: 'test' })).db;
      return db;
    },
    redis() {
      if (!redis) {
        redis = new Redis(config.redis.url, { maxRetriesPerRequest: 1 });
        redis.on('error', () => undefined); // a test that stops Redis sees failures through its commands
      }
      return redis;
    },
    configWith(more) {
      return loadConfig({ ...env, ...more });
    },
    async cleanup() {
      await db?.destroy();
      const client = redis ?? new Redis(config.redis.url, { maxRetriesPerRequest: 1 });
      try {
        await deleteByPrefix(client, keyPrefix);
      } finally {
        client.disconnect();
      }
      await dropDatabase(databaseUrl);
    },
  };
}

export { Kysely };
