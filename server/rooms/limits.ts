/**
 * Limits of the rooms feature, counted in Redis (rate-limiter-flexible) so
 * that every node shares them: PIN guessing per client address and per user,
 * and room creation per user. Keys are `keys.rateLimit:<limit>:<key>`, each
 * with its window (or block) as TTL.
 *
 * Guessing: every lookup and join by PIN is charged before the PIN is looked
 * at, and refunded when the PIN was right, so in the end only *failed* ones
 * count. Past the limit the key is blocked for `guessBlockSeconds`, which
 * outlasts the window, and every further attempt (right or wrong) is refused
 * with `rate_limited` without looking at the PIN, so a blocked client learns nothing.
 */
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RateLimit, RoomsConfig } from '../config.ts';
import { AppError, ErrorCode, unavailable } from '../errors.ts';
import type { Keys } from '../redis/keys.ts';

export type RoomLimits = ReturnType<typeof createRoomLimits>;

/** Who is guessing: the client address, and the user when signed in (the HTTP lookup has none). */
export interface Guesser {
  address: string;
  userId?: string;
}

const tooMany = (msBeforeNext: number, what: string) =>
  new AppError(ErrorCode.RateLimited, `Too many ${what}; try again later`, { retryAfterMs: Math.max(1000, Math.ceil(msBeforeNext / 1000) * 1000) });

export function createRoomLimits({ redis, keys, config }: { redis: Redis; keys: Keys; config: Pick<RoomsConfig, 'guessRateIp' | 'guessRateUser' | 'guessBlockSeconds' | 'createRateUser'> }) {
  const limiter = (name: string, limit: RateLimit, blockSeconds = 0) =>
    new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${keys.rateLimit}:${name}`,
      points: limit.points,
      duration: limit.durationSeconds,
      blockDuration: blockSeconds,
    });
  const guessIp = limiter('pin-guess-ip', config.guessRateIp, config.guessBlockSeconds);
  const guessUser = limiter('pin-guess-user', config.guessRateUser, config.guessBlockSeconds);
  const create = limiter('room-create-user', config.createRateUser);

  const checks = (who: Guesser): Array<[RateLimiterRedis, string]> => {
    const list: Array<[RateLimiterRedis, string]> = [[guessIp, who.address]];
    if (who.userId) list.push([guessUser, who.userId]);
    return list;
  };

  return {
    /**
     * Charge one guess before the PIN is looked at; throws `rate_limited` when
     * this address or user is over the limit (or blocked). Charging first keeps
     * the count exact under concurrency: a burst of parallel guesses can never
     * be evaluated past the limit. A right PIN is refunded (`refundGuess`), so
     * only failed guesses count in the end.
     */
    async chargeGuess(who: Guesser): Promise<void> {
      const outcomes = await Promise.allSettled(checks(who).map(([l, key]) => l.consume(key, 1)));
      for (const outcome of outcomes) {
        if (outcome.status === 'fulfilled') continue;
        if (outcome.reason instanceof RateLimiterRes) throw tooMany(outcome.reason.msBeforeNext, 'wrong PINs');
        throw unavailable('Redis (rate limit)', outcome.reason);
      }
    },

    /** Give back the guess charged for a PIN that turned out right. */
    async refundGuess(who: Guesser): Promise<void> {
      await Promise.allSettled(checks(who).map(([l, key]) => l.reward(key, 1)));
    },

    /**
     * One PIN guess, the only way the rooms feature uses the limits above:
     * charged before `lookup` looks at the PIN, refunded when `lookup` found
     * the room (anything but null). Throws `rate_limited` without calling
     * `lookup` when over the limit or blocked.
     */
    async guess<T>(who: Guesser, lookup: () => Promise<T | null>): Promise<T | null> {
      await this.chargeGuess(who);
      const found = await lookup();
      if (found !== null) await this.refundGuess(who);
      return found;
    },

    /** Count one room creation by `userId`; throws `rate_limited` past the limit. */
    async creation(userId: string): Promise<void> {
      try {
        await create.consume(userId, 1);
      } catch (err) {
        if (err instanceof RateLimiterRes) throw tooMany(err.msBeforeNext, 'rooms created');
        throw unavailable('Redis (rate limit)', err);
      }
    },
  };
}
