/**
 * Limits per user, shared by all of a user's sockets on every node: one
 * access token may open many sockets (up to `SESSION_MAX_SOCKETS` per node),
 * and a user may sign in many times, so per-socket limits alone let one user
 * multiply their rate. Counted in Redis with rate-limiter-flexible, behind
 * the per-socket limits (which stay the first line and cost no round trip):
 *
 * - `guard` (an event-router guard): every event counts against
 *   `USER_EVENTS_PER_SECOND`; a `room:signal` also against `ROOM_SIGNAL_RATE_USER`.
 * - `publish(userId, roomId)` (called by the feed service after its
 *   membership check): `FEED_PUBLISH_RATE_USER_ROOM`.
 *
 * Cost per event: one Redis round trip (a rate-limiter-flexible script), two
 * for `room:signal` and `feed:publish` (run one after the other); none
 * grows with the room. A key over its limit is then refused from memory
 * (`inMemoryBlockOnConsumed`) until its window ends, so a flood costs Redis
 * nothing more. When Redis fails, each limit falls back to the same limit
 * counted on this node only (`insuranceLimiter`), so the socket layer keeps
 * its limits rather than failing every event.
 */
import type { RedisClient as Redis } from '../redis/connections.ts';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Config, RateLimit } from '../config.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { Keys } from '../redis/keys.ts';
import type { Guard } from './ack.ts';

export type UserLimits = ReturnType<typeof createUserLimits>;

function limiter(redis: Redis, keyPrefix: string, limit: RateLimit): RateLimiterRedis {
  return new RateLimiterRedis({
    storeClient: redis,
    keyPrefix,
    points: limit.points,
    duration: limit.durationSeconds,
    // Past the limit, refuse from memory until the window ends: no round trip per refused event.
    inMemoryBlockOnConsumed: limit.points + 1,
    insuranceLimiter: new RateLimiterMemory({ keyPrefix, points: limit.points, duration: limit.durationSeconds }),
  });
}

export function createUserLimits({ redis, keys, config }: { redis: Redis; keys: Keys; config: Pick<Config, 'socket'> }) {
  const { eventsPerSecond, feedPublishPerRoom, roomSignal } = config.socket.perUser;
  const events = limiter(redis, `${keys.rateLimit}:user-events`, { points: eventsPerSecond, durationSeconds: 1 });
  const publishes = limiter(redis, `${keys.rateLimit}:user-publish`, feedPublishPerRoom);
  const signals = limiter(redis, `${keys.rateLimit}:user-signal`, roomSignal);

  const consume = async (l: RateLimiterRedis, key: string, what: string) => {
    try {
      await l.consume(key, 1);
    } catch (err) {
      // Both Redis and its insurance failed (never expected): let the event through rather than fail it.
      if (!(err instanceof RateLimiterRes)) return;
      throw new AppError(ErrorCode.RateLimited, `Too many ${what} from this user`, { retryAfterMs: Math.max(1, err.msBeforeNext) });
    }
  };

  const guard: Guard = async (socket, event) => {
    const userId = socket.data.user.id;
    await consume(events, userId, `events (more than ${eventsPerSecond} per second over all sockets)`);
    if (event === 'room:signal') await consume(signals, userId, `signals (more than ${roomSignal.points} per ${roomSignal.durationSeconds} s)`);
  };

  return {
    guard,
    /** Count one `feed:publish` by `userId` in `roomId`; throws `rate_limited` (with `retryAfterMs`) past the limit. */
    publish(userId: string, roomId: string): Promise<void> {
      return consume(publishes, `${userId}:${roomId}`, `feed entries in this room (more than ${feedPublishPerRoom.points} per ${feedPublishPerRoom.durationSeconds} s)`);
    },
  };
}
