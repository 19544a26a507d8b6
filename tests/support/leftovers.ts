/**
 * Names of what a test file creates on the shared services, so the test
 * command can find and remove what a killed file left behind.
 *
 * tests/run.ts gives each file's process a tag (`PINROOM_TEST_TAG`, six hex
 * digits). Every test database (`pinroom_test_<tag>_<id>`), key prefix
 * (`pinroom:test:<tag>_<id>:`) and temp folder (`<tmp>/pinroom-test-<tag>-*`:
 * owned redis-server, nginx, the development signing key) of that file
 * carries it, and
 * `removeLeftovers(tag)` drops them all once the file's process group is gone.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type Cluster } from 'ioredis';
import pg from 'pg';

export const TEST_TAG_ENV = 'PINROOM_TEST_TAG';
export const BASE_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const BASE_PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** This process's tag: the runner's, or `untagged` when a file runs on its own. */
export function testTag(): string {
  const tag = process.env[TEST_TAG_ENV];
  return tag && /^[0-9a-f]{6}$/.test(tag) ? tag : 'untagged';
}

/** A fresh id for one test context, starting with this process's tag. */
export function newTestId(): string {
  return `${testTag()}_${randomBytes(5).toString('hex')}`;
}

export const databaseNameOf = (id: string) => `pinroom_test_${id}`;
export const keyPrefixOf = (id: string) => `pinroom:test:${id}:`;
/** Prefix of this file's temp folders (owned redis-server, nginx, the signing key). */
export const tempDirPrefix = () => `pinroom-test-${testTag()}-`;

/** UNLINK every key that starts with `prefix`, in SCAN batches; resolves how many. */
/**
 * Wait until a Cluster client knows the slots: before that its `nodes()` is
 * empty, and a walk over every master would see no key at all.
 */
export async function clusterReady(client: Cluster, timeoutMs = 20_000): Promise<void> {
  if (client.status === 'ready') return;
  if (client.status === 'wait') void client.connect().catch(() => undefined);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Redis Cluster client not ready within ${timeoutMs} ms (${client.status})`)), timeoutMs);
    client.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function deleteByPrefix(client: Redis | Cluster, prefix: string): Promise<number> {
  if ((client as Cluster).isCluster) {
    // SCAN walks one node: walk every master; UNLINK key by key (keys of a batch are in many slots).
    let deleted = 0;
    await clusterReady(client as Cluster);
    for (const node of (client as Cluster).nodes('master')) {
      let cursor = '0';
      const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        const counts = await Promise.all(keys.map((k) => client.unlink(k)));
        deleted += counts.reduce((a, b) => a + b, 0);
      } while (cursor !== '0');
    }
    return deleted;
  }
  const redis = client as Redis;
  let cursor = '0';
  let deleted = 0;
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

export interface Leftovers {
  databases: string[];
  keys: number;
  folders: string[];
}

/** Drop the databases, keys and temp folders carrying `tag`. */
export async function removeLeftovers(tag: string): Promise<Leftovers> {
  if (!/^[0-9a-f]{6}$/.test(tag)) throw new Error(`not a test tag: ${tag}`);
  const found: Leftovers = { databases: [], keys: 0, folders: [] };

  const client = new pg.Client({ connectionString: BASE_PG_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>(`select datname from pg_database where datname like $1`, [`pinroom\\_test\\_${tag}\\_%`]);
    for (const { datname } of rows) {
      await client.query(`drop database if exists "${datname.replaceAll('"', '""')}" with (force)`);
      found.databases.push(datname);
    }
  } finally {
    await client.end();
  }

  const redis = new Redis(BASE_REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    found.keys = await deleteByPrefix(redis, `pinroom:test:${tag}_`);
  } finally {
    redis.disconnect();
  }

  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(`pinroom-test-${tag}-`)) continue;
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
    // The signing key folder is shared by the file's servers and outlives them by design: not a leftover.
    if (name !== `pinroom-test-${tag}-auth`) found.folders.push(name);
  }
  return found;
}
