/**
 * The feed feature assembled from its parts, for the composition root: the
 * stream store, the PostgreSQL archive, the per-node relay (live channels),
 * the archive hints and worker, the service, its metrics, the socket
 * handlers and the HTTP route. Connections are handed in (two of them
 * dedicated: the relay's subscriber, and the archive's commands, so that
 * publishes never queue behind the archive's large reads and writes);
 * nothing here opens one.
 */
import type { RedisClient as Redis } from '../redis/connections.ts';
import type { Registry } from 'prom-client';
import type { Edges, Feature, FeatureDeps } from '../feature.ts';
import type { FeedOverview } from '../observability/http.ts';
import { createScripts, type Scripts } from '../redis/scripts.ts';
import { createActivityRepository } from './activity-repository.ts';
import { createArchiveHints, createArchiver, type Archiver } from './archiver.ts';
import { registerFeedHandlers } from './feed-handlers.ts';
import { registerFeedMetrics } from './feed-metrics.ts';
import { createFeedRelay, type FeedRelay } from './feed-relay.ts';
import { createFeedService, type FeedAccess, type FeedService } from './feed-service.ts';
import { createFeedStore, type FeedStore } from './feed-store.ts';
import { registerFeedRoutes } from './http.ts';

export interface FeedDeps extends FeatureDeps {
  scripts: Scripts;
  /** Dedicated connection for the relay's SSUBSCRIBE (live channels). */
  subscriberConnection: Redis;
  /** Dedicated command connection for the archive worker. */
  archiveConnection: Redis;
  /** Membership questions, answered by the rooms feature. */
  access: FeedAccess;
  /** Administrators (server/auth/admins.ts): who may follow the global and system feeds. */
  isAdmin: (userId: string) => boolean;
  /** Per-user publish limit across sockets and nodes (server/gateway/user-limits.ts). */
  limits?: { publish(userId: string, roomId: string): Promise<void> };
  /** The Prometheus registry the feed's series join. */
  registry: Registry;
  /** Age of each live entry this node fans out, in seconds (the publish → delivery latency metric). */
  onLiveDelivery?: (ageSeconds: number) => void;
}

export type Feed = ReturnType<typeof createFeed>;

export function createFeed(deps: FeedDeps): Feature<FeedService> & {
  store: FeedStore;
  relay: FeedRelay;
  archiver: Archiver;
  archiveLag: Archiver['lag'];
  overview(): Promise<FeedOverview>;
} {
  const { config, logger, db, redis, scripts, keys } = deps;
  const hints = createArchiveHints({ redis, keys, logger });
  const store = createFeedStore({ redis, scripts, keys, config, onAppended: hints.add });
  const activity = createActivityRepository(db);
  const relay = createFeedRelay({
    store,
    subscriber: deps.subscriberConnection,
    archive: activity,
    replayMax: config.feed.replayMax,
    checkIntervalMs: config.feed.checkIntervalMs,
    subscribeTimeoutMs: config.redis.commandTimeoutMs,
    logger,
    ...(deps.onLiveDelivery ? { onLiveDelivery: deps.onLiveDelivery } : {}),
  });
  // The archive's own connection, and a store on it: its XRANGEs and global copies stay off the publish path.
  const archiveRedis = deps.archiveConnection;
  const archiveScripts = createScripts(archiveRedis);
  const archiveStore = createFeedStore({ redis: archiveRedis, scripts: archiveScripts, keys, config });
  const archiver = createArchiver({ redis: archiveRedis, scripts: archiveScripts, store: archiveStore, activity, db, keys, config, logger });
  const service = createFeedService({ store, relay, activity, access: deps.access, isAdmin: deps.isAdmin, ...(deps.limits ? { limits: deps.limits } : {}), config, logger });
  const archiveLag = () => archiver.lag();
  registerFeedMetrics(deps.registry, { archiveLag, relay, archiver, store });

  return {
    service,
    store,
    relay,
    archiver,
    /** The `feed:*` handlers, and `POST /api/rooms/:roomId/events` when `FEED_API_KEY` is set. */
    register({ router, http }: Edges): void {
      registerFeedHandlers({ router, feed: service, logger, maxBufferedBytes: config.socket.maxBufferedBytes, drainTimeoutMs: config.socket.pingTimeoutMs });
      registerFeedRoutes(http, { feed: service, enabled: config.feed.apiKey !== undefined });
    },
    /** Start delivering, hinting and archiving; the connections must be up. */
    async start(): Promise<void> {
      relay.start();
      hints.start();
      if (config.feed.archive.enabled) await archiver.start();
    },
    /** Stop the loops (the last hints are written); close the dedicated connections afterwards. */
    async stop(): Promise<void> {
      await Promise.all([relay.stop(), hints.stop(), archiver.stop()]);
    },
    /** How far the archive is behind: seconds since the oldest entry not archived, and rooms waiting. */
    archiveLag,
    /** The feed's part of `/admin/overview`: archive lag (NaN when Redis does not answer), dead letters, this node's channels. */
    async overview(): Promise<FeedOverview> {
      const lag = await archiveLag().catch(() => ({ seconds: Number.NaN, rooms: Number.NaN }));
      const { channels, subscriptions } = relay.stats();
      return { archiveLagSeconds: lag.seconds, archivePendingRooms: lag.rooms, archiveDeadLetters: archiver.stats().deadLetters, channels, subscriptions };
    },
  };
}
