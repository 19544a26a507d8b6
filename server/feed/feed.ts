/**
 * The feed feature assembled from its parts, for the composition root: the
 * stream store, the PostgreSQL archive, the per-node relay, the archive worker,
 * the service, the socket handlers and the HTTP route. Connections are handed
 * in (two of them dedicated to blocking reads); nothing here opens one.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Db } from '../db/database.ts';
import type { EventRouter } from '../gateway/ack.ts';
import type { HttpServer } from '../http/create-http.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';
import { createActivityRepository } from './activity-repository.ts';
import { createArchiver } from './archiver.ts';
import { registerFeedHandlers } from './feed-handlers.ts';
import { createFeedRelay } from './feed-relay.ts';
import { createFeedService, type FeedAccess } from './feed-service.ts';
import { createFeedStore } from './feed-store.ts';
import { registerFeedRoutes } from './http.ts';

export interface FeedDeps {
  config: Config;
  logger: Logger;
  db: Db;
  redis: Redis;
  scripts: Scripts;
  keys: Keys;
  /** Dedicated connection for the relay's XREAD BLOCK. */
  tailConnection: Redis;
  /** Dedicated connection for the archive worker's XREADGROUP BLOCK. */
  archiveConnection: Redis;
  /** Membership questions, answered by the rooms feature. */
  access: FeedAccess;
  /** Administrators (server/auth/admins.ts): who may follow the global and system feeds. */
  isAdmin: (userId: string) => boolean;
  /** Per-user publish limit across sockets and nodes (server/gateway/user-limits.ts). */
  limits?: { publish(userId: string, roomId: string): Promise<void> };
  router: EventRouter;
  http: HttpServer;
}

export type Feed = ReturnType<typeof createFeed>;

export function createFeed(deps: FeedDeps) {
  const { config, logger, db, redis, scripts, keys } = deps;
  const store = createFeedStore({ redis, scripts, keys, config });
  const activity = createActivityRepository(db);
  const relay = createFeedRelay({ store, redis, blocking: deps.tailConnection, archive: activity, replayMax: config.feed.replayMax, logger });
  const archiver = createArchiver({ redis, blocking: deps.archiveConnection, activity, keys, config, logger });
  const service = createFeedService({ store, relay, activity, access: deps.access, isAdmin: deps.isAdmin, ...(deps.limits ? { limits: deps.limits } : {}), config, logger });
  registerFeedHandlers({ router: deps.router, feed: service, logger });
  registerFeedRoutes(deps.http, { feed: service, enabled: config.feed.apiKey !== undefined });

  return {
    service,
    store,
    relay,
    archiver,
    /** Start tailing and archiving; the connections must be up. */
    async start(): Promise<void> {
      relay.start();
      if (config.feed.archive.enabled) await archiver.start();
    },
    /** Stop both loops; close the two blocking connections afterwards. */
    async stop(): Promise<void> {
      await Promise.all([relay.stop(), archiver.stop()]);
    },
    /** Entries not yet archived (a gauge). */
    archiveLag: () => archiver.lag(),
  };
}
