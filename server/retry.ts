/**
 * `withRetry`: exponential backoff with full jitter for operations that may
 * fail transiently (a reset connection, a timeout, Redis LOADING/TRYAGAIN).
 * Only operations marked `idempotent` are retried: repeating a write that may
 * already have been applied would apply it twice.
 */
import type { Logger } from 'pino';

export interface RetryOptions {
  /** Total attempts, including the first. @default 3 */
  attempts?: number;
  /** Backoff base, ms: the cap of attempt n's delay is `baseMs * 2^(n-1)`. @default 50 */
  baseMs?: number;
  /** Upper bound of one delay, ms. @default 1000 */
  maxMs?: number;
  /** The operation can be repeated safely. Non-idempotent operations run once. */
  idempotent: boolean;
  /** Name used in the retry log line. */
  name?: string;
  logger?: Pick<Logger, 'warn'>;
  /** Decides which errors are worth retrying. @default isTransientError */
  isTransient?: (err: unknown) => boolean;
  /** Injected for tests. @default Math.random */
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTCONN',
  // PostgreSQL: serialization failure, deadlock, too many connections, admin shutdown, cannot connect now.
  '40001',
  '40P01',
  '53300',
  '57P01',
  '57P03',
]);
const TRANSIENT_REDIS = /^(LOADING|TRYAGAIN|BUSY|MASTERDOWN|CLUSTERDOWN|READONLY)\b/;
// ioredis Cluster: no node answered, the slot map could not be refreshed, redirections did not settle (a failover).
const TRANSIENT_MESSAGES = /Command timed out|Connection is closed|Connection terminated|connect ETIMEDOUT|timeout exceeded when trying to connect|Command aborted due to connection close|Failed to refresh slots cache|Too many Cluster redirections|None of startup nodes is available|Cluster isn't ready/i;

/** True for errors that say "try again", never for errors about the request itself. */
export function isTransientError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  if (TRANSIENT_REDIS.test(err.message) || TRANSIENT_MESSAGES.test(err.message)) return true;
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err && isTransientError(cause);
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Run `op`, retrying transient failures of idempotent operations with full-jitter exponential backoff. */
export async function withRetry<T>(op: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const attempts = options.idempotent ? Math.max(1, options.attempts ?? 3) : 1;
  const baseMs = options.baseMs ?? 50;
  const maxMs = options.maxMs ?? 1000;
  const isTransient = options.isTransient ?? isTransientError;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      if (attempt >= attempts || !isTransient(err)) throw err;
      const delay = Math.floor(random() * Math.min(maxMs, baseMs * 2 ** (attempt - 1)));
      options.logger?.warn({ err, op: options.name, attempt, delayMs: delay }, 'transient failure, retrying');
      await sleep(delay);
    }
  }
}
