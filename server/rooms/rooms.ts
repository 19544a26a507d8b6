/**
 * The rooms feature assembled from its parts, for the composition root: the
 * room service (PINs, joins, presence, host controls), its Socket.IO handlers
 * and HTTP route, the node's timers, and the answers the activity feed asks
 * of rooms (`feedAccess`). The Redis connection is handed in (the membership
 * path's own); nothing here opens one.
 */
import type { Loaders } from '../cache/loaders.ts';
import type { Edges, Feature, FeatureDeps } from '../feature.ts';
import type { FeedAccess } from '../feed/feed-service.ts';
import type { PinroomServer } from '../gateway/create-io.ts';
import type { RedisClient as Redis } from '../redis/connections.ts';
import { createScripts } from '../redis/scripts.ts';
import { createFeedAccess } from './feed-access.ts';
import { registerRoomRoutes } from './http.ts';
import { createNodeTimers } from './node-timers.ts';
import { createIoNotifier } from './notifier.ts';
import { registerRoomHandlers } from './room-handlers.ts';
import { createRoomService, type RoomService, type RoomServiceDeps } from './room-service.ts';

export interface RoomsDeps extends FeatureDeps {
  /** The membership path's connection: joins never wait behind feed appends. */
  redis: Redis;
  io: PinroomServer;
  loaders: Pick<Loaders, 'rooms'>;
  /** Where room events go besides the sockets (the activity feed). */
  events: NonNullable<RoomServiceDeps['events']>;
  /** The room feed's current position, for the `room:join` answer. */
  feedPosition: NonNullable<RoomServiceDeps['feedPosition']>;
  /** Verify an access token (the PIN lookup's optional sign-in). */
  authenticate(token: string): Promise<{ userId: string }>;
}

export type Rooms = ReturnType<typeof createRooms>;

export function createRooms(deps: RoomsDeps): Feature<RoomService> & { feedAccess: FeedAccess } {
  const { config, logger, redis, loaders } = deps;
  const service = createRoomService({
    config: config.rooms,
    db: deps.db,
    redis,
    scripts: createScripts(redis),
    keys: deps.keys,
    logger,
    rooms: loaders.rooms,
    notifier: createIoNotifier(deps.io),
    events: deps.events,
    feedPosition: deps.feedPosition,
  });
  const timers = createNodeTimers({ config: config.rooms, rooms: service, logger });

  return {
    service,
    /** Membership questions of the activity feed, answered from the room cache. */
    feedAccess: createFeedAccess(loaders.rooms),

    /** `GET /rooms/pin/:pin` and the `room:*` handlers. */
    register({ router, http }: Edges): void {
      registerRoomRoutes(http, { rooms: service, authenticate: deps.authenticate });
      registerRoomHandlers({ router, rooms: service, logger });
    },

    /** The first heartbeat, then the node's timers. */
    async start(): Promise<void> {
      await service.start();
      timers.start();
    },

    /** Stop the timers, take this node's sockets out of presence and send what the broadcasts owe. Before the transports close. */
    async stop(): Promise<void> {
      const stopped = timers.stop();
      await service.stop();
      await stopped;
    },
  };
}
