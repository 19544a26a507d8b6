/**
 * Redis connections. pinroom keeps separate connections by role: one for
 * commands, one for the adapter's subscriptions, and (for the feed) one for
 * blocking reads, because a subscribed or blocked connection cannot serve
 * anything else; and one for the rooms feature's membership path (joins,
 * leaves, presence, PIN-guess limits), whose commands would otherwise wait
 * in line behind every feed append queued on the command connection. Clients connect lazily: `connectRedis` is called by `start()`.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrl, type Config } from '../config.ts';
import { StartupError } from '../errors.ts';

export type RedisRole = 'command' | 'subscriber' | 'blocking' | (string & {});

/** Build (but do not connect) a Redis client for one role. */
export function createRedisClient(config: Pick<Config, 'redis'>, logger: Logger, role: RedisRole, overrides: RedisOptions = {}): Redis {
  const client = new Redis(config.redis.url, {
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
  });
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

/** Connect a lazy client, or fail with one clear `StartupError` after the configured timeout. */
export async function connectRedis(client: Redis, config: Pick<Config, 'redis'>): Promise<void> {
  if (client.status === 'ready') return;
  const deadline = config.redis.connectTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  let lastError: Error | undefined;
  const onError = (err: Error) => {
    lastError = err;
  };
  client.on('error', onError);
  try {
    await Promise.race([
      (async () => {
        if (client.status === 'wait') await client.connect();
        await client.ping();
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
      `cannot reach Redis at ${redactUrl(config.redis.url)} (${reason}). Start it (redis-server, or: docker compose up -d redis postgres) or set REDIS_URL.`,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
    client.off('error', onError);
  }
}

/** Close a client politely (QUIT), or drop it if that does not finish quickly. */
export async function closeRedis(client: Redis, timeoutMs = 1000): Promise<void> {
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
