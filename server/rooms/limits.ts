/**
 * Limits of the rooms feature, counted in Redis (rate-limiter-flexible) so
 * that every node shares them: wrong PINs per user, per address+user and per
 * address, and room creation per user. Keys are
 * `keys.rateLimit:<limit>:<key>`, each with its window (or block) as TTL.
 *
 * Guessing is fair to a classroom (30 pupils behind one NAT): only *wrong*
 * PINs count, and a right PIN is never refused for guesses made by others.
 * - The guesser's own counts (user; address+user) are charged before the PIN
 *   is looked at and refunded when it was right: exact under any burst of
 *   parallel guesses by that user, and only that user's guesses count.
 * - The address count is checked first (a blocked address is refused without
 *   looking at the PIN) and charged only for a wrong PIN, after the lookup, so
 *   the right PINs of the others at that address never touch it. Its limit is
 *   much higher (`PIN_GUESS_RATE_IP`): it binds a crowd of throwaway guests,
 *   not a pupil's typo.
 * - A lookup without a user (anonymous `GET /rooms/pin/:pin`) has only the
 *   address count, charged first and refunded when right (exact).
 * Past a limit the key is blocked for `guessBlockSeconds`, or the limit's
 * window if longer (a block that ended before the window would hand out a
 * fresh allowance early); every attempt it
 * binds, right or wrong, is then refused with `rate_limited` without looking
 * at the PIN, so a blocked client learns nothing. The odds this leaves an
 * attacker are worked out in docs/rooms.md (PIN guessing).
 */
import type { RedisClient as Redis } from '../redis/connections.ts';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RateLimit, RoomsConfig } from '../config.ts';
import { AppError, ErrorCode, unavailable } from '../errors.ts';
import type { Keys } from '../redis/keys.ts';

export type RoomLimits = ReturnType<typeof createRoomLimits>;

/** Who is guessing: the client address key, and the user when signed in (an anonymous HTTP lookup has none). */
export interface Guesser {
  address: string;
  userId?: string;
}

const tooMany = (msBeforeNext: number, what: string) =>
  new AppError(ErrorCode.RateLimited, `Too many ${what}; try again later`, { retryAfterMs: Math.max(1000, Math.ceil(msBeforeNext / 1000) * 1000) });

type GuessConfig = Pick<RoomsConfig, 'guessRateIp' | 'guessRateUser' | 'guessRateUserIp' | 'guessBlockSeconds' | 'createRateUser'>;

export function createRoomLimits({ redis, keys, config }: { redis: Redis; keys: Keys; config: GuessConfig }) {
  const limiter = (name: string, limit: RateLimit, blockSeconds = 0) =>
    new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${keys.rateLimit}:${name}`,
      points: limit.points,
      duration: limit.durationSeconds,
      blockDuration: blockSeconds && Math.max(blockSeconds, limit.durationSeconds),
    });
  const guessIp = limiter('pin-guess-ip', config.guessRateIp, config.guessBlockSeconds);
  const guessUser = limiter('pin-guess-user', config.guessRateUser, config.guessBlockSeconds);
  const guessUserIp = limiter('pin-guess-user-ip', config.guessRateUserIp, config.guessBlockSeconds);
  const create = limiter('room-create-user', config.createRateUser);

  type Count = [RateLimiterRedis, string];
  /** The counts charged before the lookup (refunded when right), and the ones only checked before and charged after a miss. */
  const countsOf = (who: Guesser): { own: Count[]; shared: Count[] } =>
    who.userId
      ? {
          own: [
            [guessUser, who.userId],
            [guessUserIp, `${who.address}|${who.userId}`],
          ],
          shared: [[guessIp, who.address]],
        }
      : { own: [[guessIp, who.address]], shared: [] };

  /** Throw `rate_limited` (or `unavailable`) for the first refusal among `outcomes`. */
  const refuse = (outcomes: PromiseSettledResult<unknown>[]) => {
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') continue;
      if (outcome.reason instanceof RateLimiterRes) throw tooMany(outcome.reason.msBeforeNext, 'wrong PINs');
      throw unavailable('Redis (rate limit)', outcome.reason);
    }
  };

  async function check(counts: Count[]): Promise<void> {
    const outcomes = await Promise.allSettled(
      counts.map(async ([l, key]) => {
        const res = await l.get(key);
        // At the limit: the miss that reached it started the block (`chargeMiss`).
        if (res && res.consumedPoints >= l.points) throw res;
      }),
    );
    refuse(outcomes);
  }

  const giveBack = (counts: Count[]) => Promise.allSettled(counts.map(([l, key]) => l.reward(key, 1)));

  /**
   * Charge one point on each count; on any refusal, give back the points that
   * were granted and throw. A refused point is not given back: the block that
   * the crossing attempt wrote holds the count, which a reward would undercut.
   */
  async function charge(counts: Count[]): Promise<void> {
    const outcomes = await Promise.allSettled(counts.map(([l, key]) => l.consume(key, 1)));
    if (outcomes.every((o) => o.status === 'fulfilled')) return;
    await giveBack(counts.filter((_, i) => outcomes[i]!.status === 'fulfilled'));
    refuse(outcomes);
  }

  /**
   * Count a wrong PIN on a checked count. The miss that reaches the limit
   * blocks the key (the answer stays the miss; every later attempt is
   * refused), so a count that is only checked allows exactly its points.
   * Parallel misses may pass the check together: the overshoot is bounded by
   * the guessers' own counts, each exact.
   */
  async function chargeMiss([l, key]: Count): Promise<void> {
    const res = await l.penalty(key, 1);
    if (res.consumedPoints === l.points) await l.block(key, l.blockDuration);
  }

  return {
    /**
     * One PIN guess, the only way the rooms feature uses the guess limits:
     * `lookup` returns the room (or the decision) for a right PIN, null for a
     * wrong one. Throws `rate_limited` without calling `lookup` when a count
     * that binds this guesser is blocked; after a wrong PIN, returns null
     * having charged the miss (the miss that crosses a limit starts its block).
     */
    async guess<T>(who: Guesser, lookup: () => Promise<T | null>): Promise<T | null> {
      const { own, shared } = countsOf(who);
      const [checked, charged] = await Promise.allSettled([check(shared), charge(own)]);
      if (checked.status === 'rejected') {
        // Blocked address: not a guess by this user either.
        if (charged.status === 'fulfilled') await giveBack(own);
        throw checked.reason;
      }
      if (charged.status === 'rejected') throw charged.reason;
      let found: T | null;
      try {
        found = await lookup();
      } catch (err) {
        // Not answered (a dependency failed): not a guess either.
        await giveBack(own);
        throw err;
      }
      if (found !== null) await giveBack(own);
      else await Promise.allSettled(shared.map(chargeMiss));
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
