/**
 * Per-test-file isolation on the shared Redis and PostgreSQL: a fresh database
 * and a fresh key prefix for each context, both removed by `cleanup()`.
 * Tests build their own config from an env map; they never mutate process.env.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { Kysely } from 'kysely';
import { loadConfig, type Config } from '../../server/config.ts';
import { createDb, dropDatabase, ensureDatabase, type Db } from '../../server/db/database.ts';
import { migrateToLatest } from '../../server/db/migrate.ts';
import { createLogger } from '../../server/logger.ts';
import { BASE_PG_URL, BASE_REDIS_URL, clusterReady, databaseNameOf, deleteByPrefix, keyPrefixOf, newTestId, tempDirPrefix } from './leftovers.ts';

export { BASE_PG_URL, BASE_REDIS_URL, deleteByPrefix };

/**
 * Set by the runner's cluster pass (tests/run.ts): the seed nodes of a real
 * 3-master Redis Cluster. Every context then runs its servers with
 * `REDIS_CLUSTER_NODES` (cluster mode) and its own clients on the cluster.
 */
export const TEST_REDIS_CLUSTER_NODES = process.env.TEST_REDIS_CLUSTER_NODES || undefined;

/** A plain client of the test Redis: the cluster during the cluster pass, else `url`. */
function plainClient(url: string): Redis {
  if (!TEST_REDIS_CLUSTER_NODES) return new Redis(url, { maxRetriesPerRequest: 1 });
  const nodes = TEST_REDIS_CLUSTER_NODES.split(',').map((s) => ({ host: s.split(':')[0]!, port: Number(s.split(':')[1]) }));
  // Same commands as a Redis client, routed by slot (tests use single-key commands through it).
  return new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 1 } }) as unknown as Redis;
}

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
  /** A plain Redis client for assertions (closed by `cleanup`); on the cluster pass a Cluster client: single-key commands only. */
  redis(): Redis;
  /** Every key matching `pattern` (SCAN; on every master during the cluster pass). */
  keysMatching(pattern: string): Promise<string[]>;
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
    // every test server of this file (so tokens verify on all of them), never
    // into the repo; the runner removes it when the file ends.
    AUTH_DATA_DIR: join(tmpdir(), `${tempDirPrefix()}auth`),
    ...(TEST_REDIS_CLUSTER_NODES ? { REDIS_CLUSTER_NODES: TEST_REDIS_CLUSTER_NODES } : {}),
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
        redis = plainClient(config.redis.url);
        redis.on('error', () => undefined); // a test that stops Redis sees failures through its commands
      }
      return redis;
    },
    async keysMatching(pattern) {
      const client = this.redis() as Redis | Cluster;
      const found: string[] = [];
      if (client instanceof Cluster) await clusterReady(client);
      for (const node of client instanceof Cluster ? client.nodes('master') : [client]) {
        let cursor = '0';
        do {
          const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          found.push(...batch);
        } while (cursor !== '0');
      }
      return found;
    },
    configWith(more) {
      return loadConfig({ ...env, ...more });
    },
    async cleanup() {
      await db?.destroy();
      const client = redis ?? plainClient(config.redis.url);
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
