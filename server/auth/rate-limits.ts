/**
 * Per-client limits of the auth routes, counted in Redis (rate-limiter-flexible)
 * so that every node shares them. Keys are `keys.rateLimit:<limit>:<key>`,
 * each with the limit's window as TTL. Limits and windows come from config.
 */
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { AuthConfig, RateLimit } from '../config.ts';
import { AppError, ErrorCode, unavailable } from '../errors.ts';
import type { Keys } from '../redis/keys.ts';

export type AuthLimitName = keyof AuthConfig['rateLimits'];
export type AuthRateLimits = ReturnType<typeof createAuthRateLimits>;

const LIMIT_KEYS: Record<AuthLimitName, string> = {
  loginUserIp: 'auth-login-user-ip',
  loginIp: 'auth-login-ip',
  registerIp: 'auth-register-ip',
  guestIp: 'auth-guest-ip',
};

export function createAuthRateLimits({ redis, keys, limits }: { redis: Redis; keys: Keys; limits: AuthConfig['rateLimits'] }) {
  const build = (name: AuthLimitName, limit: RateLimit) =>
    new RateLimiterRedis({ storeClient: redis, keyPrefix: `${keys.rateLimit}:${LIMIT_KEYS[name]}`, points: limit.points, duration: limit.durationSeconds });
  const limiters = Object.fromEntries((Object.keys(LIMIT_KEYS) as AuthLimitName[]).map((name) => [name, build(name, limits[name])])) as Record<AuthLimitName, RateLimiterRedis>;

  return {
    /** Count one action against `name` for `key`; throws `rate_limited` (with `retryAfterMs`) when over. */
    async consume(name: AuthLimitName, key: string): Promise<void> {
      try {
        await limiters[name].consume(key, 1);
      } catch (err) {
        if (err instanceof RateLimiterRes) {
          const retryAfterMs = Math.max(1000, Math.ceil(err.msBeforeNext / 1000) * 1000);
          throw new AppError(ErrorCode.RateLimited, 'Too many attempts; try again later', { retryAfterMs });
        }
        throw unavailable('Redis (rate limit)', err);
      }
    },
    /** Forget the count of `name` for `key` (a successful login clears its failures). */
    async reset(name: AuthLimitName, key: string): Promise<void> {
      await limiters[name].delete(key).catch(() => undefined);
    },
  };
}
