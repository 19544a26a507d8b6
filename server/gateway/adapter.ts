/**
 * The Socket.IO adapter that carries broadcasts, room joins and leaves and
 * disconnects between nodes through Redis. Two implementations, chosen by
 * `SOCKET_ADAPTER`:
 *
 * - `classic` (`createAdapter`): PUBLISH on one channel per namespace, every
 *   node PSUBSCRIBEs one pattern and filters locally. Every broadcast reaches
 *   every node; subscriptions never change with rooms.
 * - `sharded` (`createShardedAdapter`, Redis 7 SPUBLISH/SSUBSCRIBE): one
 *   shard channel per Socket.IO room in `dynamic` mode, so a broadcast only
 *   reaches nodes with members of that room, at the cost of one SSUBSCRIBE
 *   and SUNSUBSCRIBE per room a node gains or loses (every socket's user and
 *   session groups are rooms too). The only one on a Redis Cluster (a classic
 *   PUBLISH is copied to every master), where each shard channel is served by
 *   its slot's master through ioredis' per-master subscriber connections.
 *
 * Both take the command connection to publish and the dedicated subscriber
 * connection; ioredis resubscribes both kinds after a reconnect.
 *
 * The adapter library sends its subscribe commands without waiting for their
 * answers, so a refused SSUBSCRIBE went unnoticed. Here every subscribe it
 * sends is watched: the ones sent while the adapter is built must all be
 * confirmed before `subscribed` resolves (start-up waits for it, and `/readyz`
 * is 503 until then), and a later one that fails is logged.
 */
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import { StartupError } from '../errors.ts';
import { clusterModeHint, isClusterRedirect, redisTarget, type RedisClient as Redis } from '../redis/connections.ts';

export type AdapterKind = 'classic' | 'sharded';

type Subscribe = (...args: unknown[]) => Promise<unknown>;
const SUBSCRIBE_METHODS = ['subscribe', 'psubscribe', 'ssubscribe'] as const;

export interface RedisAdapter {
  /** For `io.adapter(...)`. */
  adapter: ReturnType<typeof createAdapter>;
  /**
   * Resolves once every subscription of the adapters built so far is
   * confirmed by Redis; rejects with the first refusal. Call after
   * `io.adapter(adapter)` (which builds the adapters of existing namespaces).
   */
  subscribed(): Promise<void>;
  /** True once `subscribed()` resolved, while the subscriber connection is up. */
  confirmed(): boolean;
}

export function createRedisAdapter(kind: AdapterKind, pub: Redis, sub: Redis, channel: string, logger?: Pick<Logger, 'warn' | 'error'>): RedisAdapter {
  const pending: Promise<unknown>[] = [];
  let collecting = true;
  let confirmed = false;
  const target = sub as unknown as Record<(typeof SUBSCRIBE_METHODS)[number], Subscribe>;
  for (const method of SUBSCRIBE_METHODS) {
    const original = target[method].bind(sub);
    target[method] = (...args: unknown[]) => {
      const sent = original(...args);
      if (collecting) pending.push(sent);
      sent.catch((err: Error) => {
        logger?.error({ err: { message: err.message }, command: method.toUpperCase(), channels: args.flat().slice(0, 3) }, 'the Socket.IO adapter\'s subscribe was refused; this node misses broadcasts');
      });
      return sent;
    };
  }
  const adapter = kind === 'sharded' ? createShardedAdapter(pub, sub, { channelPrefix: channel, subscriptionMode: 'dynamic' }) : createAdapter(pub, sub, { key: channel });
  return {
    adapter: adapter as ReturnType<typeof createAdapter>,
    async subscribed() {
      collecting = false;
      if (pending.length === 0) throw new Error('the adapter sent no subscribe: call after io.adapter()');
      await Promise.all(pending.splice(0));
      confirmed = true;
    },
    confirmed: () => confirmed && sub.status === 'ready',
  };
}

/** Start-up waits (at most `REDIS_CONNECT_TIMEOUT_MS`) for the adapter's subscriptions; a refusal or no answer is a `StartupError` in one line. */
export async function confirmSubscriptions(built: RedisAdapter, config: Pick<Config, 'redis' | 'socket'>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      built.subscribed(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${config.redis.connectTimeoutMs} ms`)), config.redis.connectTimeoutMs);
      }),
    ]);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new StartupError(isClusterRedirect(err) ? clusterModeHint(config, reason) : `the Socket.IO adapter (SOCKET_ADAPTER=${config.socket.adapter}) could not subscribe on ${redisTarget(config)}: ${reason}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
