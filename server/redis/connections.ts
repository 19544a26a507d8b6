/**
 * Redis connections. pinroom keeps separate connections by role: one for
 * commands, one for the adapter's subscriptions, and (for the feed) one for
 * blocking reads, because a subscribed or blocked connection cannot serve
 * anything else; and one for the rooms feature's membership path (joins,
 * leaves, presence, PIN-guess limits), whose commands would otherwise wait
 * in line behind every feed append queued on the command connection. Clients connect lazily: `connectRedis` is called by `start()`.
 *
 * With `REDIS_CLUSTER_NODES` every role gets an ioredis `Cluster` instead: it
 * learns the slot map from the seed nodes, sends each command to the master
 * of its key's slot, follows MOVED and ASK redirections and refreshes the map
 * after a failover, all without a restart. A `Cluster` keeps one connection
 * per master, so the roles stay apart as they do on one Redis; the
 * subscriber roles use one SSUBSCRIBE connection per master
 * (`shardedSubscribers`), since a shard channel lives on its slot's master.
 */
import { Cluster, Redis, type ChainableCommander, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrl, type Config } from '../config.ts';
import { StartupError } from '../errors.ts';
import { keySlot } from './slots.ts';

export type RedisRole = 'command' | 'subscriber' | 'blocking' | (string & {});

/** A connection to one Redis, or to a Redis Cluster: the same commands, the cluster's routed by key slot. */
export type RedisClient = Redis | Cluster;

/** True for a Redis Cluster client. */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/** How the connection is named in messages: the URL, or the cluster's seed nodes. */
export function redisTarget(config: Pick<Config, 'redis'>): string {
  const nodes = config.redis.clusterNodes;
  return nodes ? `REDIS_CLUSTER_NODES=${nodes.map((n) => `${n.host}:${n.port}`).join(',')}` : redactUrl(config.redis.url);
}

/** Build (but do not connect) a Redis client for one role. */
export function createRedisClient(config: Pick<Config, 'redis'>, logger: Logger, role: RedisRole, overrides: RedisOptions = {}): RedisClient {
  const options: RedisOptions = {
    lazyConnect: true,
    connectionName: `pinroom:${role}`,
    // Blocking reads outlive any command timeout by design; the caller bounds them.
    commandTimeout: role === 'blocking' || role === 'subscriber' ? undefined : config.redis.commandTimeoutMs,
    connectTimeout: config.redis.connectTimeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    // Reconnect for ever, backing off to 2 s with jitter; a restarted Redis is picked up by itself.
    retryStrategy: (times) => Math.min(2000, 50 * 2 ** Math.min(times, 6)) * (0.5 + Math.random() / 2),
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
    ...overrides,
  };
  const client = config.redis.clusterNodes ? createCluster(config, role, options) : new Redis(config.redis.url, options);
  const log = logger.child({ redis: role });
  let down = false;
  let everReady = false;
  client.on('error', (err: Error) => {
    // Before the first connection, start-up reports the failure itself in one line.
    if (everReady && !down) log.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'redis connection error');
    down = true;
  });
  client.on('ready', () => {
    everReady = true;
    if (down) log.info('redis connection restored');
    down = false;
  });
  return client;
}

function createCluster(config: Pick<Config, 'redis'>, role: RedisRole, options: RedisOptions): Cluster {
  const url = new URL(config.redis.url);
  const { lazyConnect, retryStrategy, ...perNode } = options;
  const clusterOptions: ClusterOptions = {
    lazyConnect,
    // Each master's connection is built from these (credentials and TLS from REDIS_URL).
    redisOptions: {
      ...perNode,
      ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
      ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    },
    // Reconnect to the cluster for ever, as a single Redis connection does.
    clusterRetryStrategy: retryStrategy ?? undefined,
    enableOfflineQueue: options.enableOfflineQueue,
    // Reads go to masters: a replica may lag behind what a write just acknowledged.
    scaleReads: 'master',
    // A failover takes the cluster a few seconds (cluster-node-timeout and the election): MOVED,
    // ASK and TRYAGAIN are retried meanwhile, and the slot map is refreshed after each MOVED.
    maxRedirections: 16,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 200,
    slotsRefreshTimeout: Math.max(1000, config.redis.commandTimeoutMs),
    slotsRefreshInterval: 5000,
    shardedSubscribers: role === 'subscriber',
  };
  return new Cluster(config.redis.clusterNodes!.map((n) => ({ host: n.host, port: n.port })), clusterOptions);
}

/**
 * Connect a lazy client, or fail with one clear `StartupError` after the
 * configured timeout. A single-Redis client that finds a cluster node (it
 * would answer MOVED for most keys) fails naming `REDIS_CLUSTER_NODES`.
 */
export async function connectRedis(client: RedisClient, config: Pick<Config, 'redis'>): Promise<void> {
  if (client.status === 'ready') return;
  const deadline = config.redis.connectTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  let lastError: Error | undefined;
  let clusterNode = false;
  const onError = (err: Error) => {
    lastError = err;
  };
  client.on('error', onError);
  try {
    await Promise.race([
      (async () => {
        if (client.status === 'wait') await client.connect();
        await client.ping();
        if (!isCluster(client)) {
          const info = await client.info('cluster').catch(() => '');
          if (/cluster_enabled:1/.test(info)) clusterNode = true;
        }
      })(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${deadline} ms`)), deadline);
      }),
    ]);
  } catch (err) {
    client.disconnect();
    const cause = lastError ?? err;
    const reason = cause instanceof Error ? ((cause as { code?: string }).code ?? cause.message) : String(cause);
    throw new StartupError(
      config.redis.clusterNodes
        ? `cannot reach the Redis Cluster at ${redisTarget(config)} (${reason}). Check that the nodes answer and the cluster is formed (redis-cli --cluster check host:port).`
        : `cannot reach Redis at ${redactUrl(config.redis.url)} (${reason}). Start it (redis-server, or: docker compose up -d redis postgres) or set REDIS_URL.`,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
    client.off('error', onError);
  }
  if (clusterNode) {
    client.disconnect();
    throw new StartupError(clusterModeHint(config));
  }
}

/** The one line printed when a single-Redis configuration meets a Redis Cluster (MOVED, CROSSSLOT, cluster_enabled). */
export function clusterModeHint(config: Pick<Config, 'redis'>, seen?: string): string {
  return `${redactUrl(config.redis.url)} is a Redis Cluster node${seen ? ` (${seen})` : ''}: set REDIS_CLUSTER_NODES=host:port,host:port,... (some of its nodes) to run in cluster mode.`;
}

/** True for a Redis reply that says the key or keys live elsewhere in a cluster. */
export function isClusterRedirect(err: unknown): boolean {
  return err instanceof Error && /^(MOVED|ASK|CROSSSLOT|CLUSTERDOWN)\b/.test(err.message);
}

/** Close a client politely (QUIT), or drop it if that does not finish quickly. */
export async function closeRedis(client: RedisClient, timeoutMs = 1000): Promise<void> {
  if (client.status === 'end' || client.status === 'wait') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.quit().catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  client.disconnect();
}

/** The results of a MULTI or pipeline `exec()`, or the first error among them. */
export function execOk(results: [Error | null, unknown][] | null): unknown[] {
  if (!results) throw new Error('transaction aborted');
  for (const [err] of results) if (err) throw err;
  return results.map(([, value]) => value);
}

/** Indexes of `keys` grouped by cluster slot; one group holding all of them on a single Redis. */
export function groupsBySlot(client: RedisClient, keys: readonly string[]): number[][] {
  if (!isCluster(client)) return [keys.map((_, i) => i)];
  const groups = new Map<number, number[]>();
  keys.forEach((key, i) => {
    const slot = keySlot(key);
    const group = groups.get(slot);
    if (group) group.push(i);
    else groups.set(slot, [i]);
  });
  return [...groups.values()];
}

/**
 * A pipeline of one or more commands per item, whose keys are the item's key:
 * one pipeline on a single Redis, one per slot on a cluster (sent together;
 * a cluster pipeline must stay on one node). `queue` adds `perItem` commands.
 * Resolves the `exec()` results in item order.
 */
export async function pipelineBySlot<T>(
  client: RedisClient,
  items: readonly T[],
  keyOf: (item: T) => string,
  queue: (batch: ChainableCommander, item: T) => void,
  perItem = 1,
): Promise<[Error | null, unknown][]> {
  const out = new Array<[Error | null, unknown]>(items.length * perItem);
  await Promise.all(
    groupsBySlot(client, items.map(keyOf)).map(async (indexes) => {
      const batch = client.pipeline();
      for (const i of indexes) queue(batch, items[i]!);
      const results = (await batch.exec()) ?? [];
      indexes.forEach((i, j) => {
        for (let k = 0; k < perItem; k++) out[i * perItem + k] = results[j * perItem + k] ?? [new Error('no reply'), null];
      });
    }),
  );
  return out;
}

/** MGET of keys in any slots: one MGET on a single Redis, one per slot on a cluster (sent together). */
export async function mgetBySlot(client: RedisClient, keys: readonly string[]): Promise<(string | null)[]> {
  if (!isCluster(client)) return client.mget(...keys);
  const out = new Array<string | null>(keys.length);
  await Promise.all(
    groupsBySlot(client, keys).map(async (indexes) => {
      const values = await client.mget(...indexes.map((i) => keys[i]!));
      indexes.forEach((i, j) => (out[i] = values[j] ?? null));
    }),
  );
  return out;
}
