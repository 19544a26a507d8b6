/**
 * Per-client limits of the auth routes, counted in Redis (rate-limiter-flexible)
 * so that every node shares them. Keys are `keys.rateLimit:<limit>:<key>`,
 * each with the limit's window as TTL. Limits and windows come from config.
 * Addresses arrive as their `addressKey` (an IPv6 address counts as its /64).
 * Also here: the per-account login backoff (`createLoginBackoff`).
 */
import type { RedisClient as Redis } from '../redis/connections.ts';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { AuthConfig, RateLimit } from '../config.ts';
import { AppError, ErrorCode, unavailable } from '../errors.ts';
import type { Keys } from '../redis/keys.ts';
import type { Scripts } from '../redis/scripts.ts';

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

export type LoginBackoff = ReturnType<typeof createLoginBackoff>;

/**
 * The per-account login backoff, across every address: after
 * `after.points` failed logins of one username (within `after.durationSeconds`
 * of the last one), each further attempt must wait 1 s, then 2 s, 4 s, ...
 * up to `maxSeconds` after the previous failure; earlier attempts get
 * `rate_limited` with `retryAfterMs` and cost no password hash. An attempt is
 * counted when admitted (one Lua script, `login-attempt.lua`) and forgotten by
 * a successful login. Unknown usernames are counted the same way, so the
 * answers do not tell which accounts exist.
 */
export function createLoginBackoff({
  redis,
  scripts,
  keys,
  config,
  now = Date.now,
}: {
  redis: Redis;
  scripts: Scripts;
  keys: Keys;
  config: Pick<AuthConfig, 'loginBackoffAfter' | 'loginBackoffMaxSeconds' | 'loginBackoffFirstMs'>;
  now?: () => number;
}) {
  const maxMs = config.loginBackoffMaxSeconds * 1000;
  const ttlMs = Math.max(config.loginBackoffAfter.durationSeconds * 1000, 2 * maxMs);
  return {
    /** Admit and count one attempt on `username`; throws `rate_limited` while its backoff runs. */
    async attempt(username: string): Promise<void> {
      let waitMs: number;
      try {
        waitMs = await scripts.run<number>('login-attempt', [keys.loginFailures(username)], [now(), config.loginBackoffAfter.points, config.loginBackoffFirstMs, maxMs, ttlMs]);
      } catch (err) {
        throw unavailable('Redis (login backoff)', err);
      }
      if (waitMs > 0) throw new AppError(ErrorCode.RateLimited, 'Too many failed logins for this account; wait before trying again', { retryAfterMs: waitMs });
    },
    /** A successful login clears the account's failures. */
    async succeeded(username: string): Promise<void> {
      await redis.del(keys.loginFailures(username)).catch(() => undefined);
    },
  };
}
