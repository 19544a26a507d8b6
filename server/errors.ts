/**
 * The one server-side error model. Code raises `AppError` with a wire code;
 * only the edges (the Socket.IO ack wrapper and the HTTP error handler) turn
 * errors into payloads, through `toErrorPayload`. A Redis or PostgreSQL
 * failure that no service mapped becomes `unavailable`; anything else that is
 * not an `AppError` becomes `internal` with a generic message and is logged with its cause.
 */
import type { Logger } from 'pino';
import { ERRORS, ErrorCode, type ErrorPayload } from '../shared/errors.ts';
import { isTransientError } from './retry.ts';

export { ErrorCode };

export interface AppErrorOptions {
  cause?: unknown;
  /** Overrides the code's default retryability. */
  retryable?: boolean;
  retryAfterMs?: number;
  issues?: string[];
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly issues: string[] | undefined;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.retryable = options.retryable ?? ERRORS[code].retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.issues = options.issues;
  }
}

/** Turn any thrown value into a wire error. Unknown errors are logged and hidden behind `internal`. */
export function toErrorPayload(err: unknown, logger: Pick<Logger, 'warn' | 'error'>, context: Record<string, unknown> = {}): ErrorPayload {
  if (err instanceof AppError) {
    if (err.code === ErrorCode.Internal || err.code === ErrorCode.Unavailable) {
      logger.warn({ ...context, err, code: err.code }, err.message);
    }
    const payload: ErrorPayload = { code: err.code, message: err.message, retryable: err.retryable };
    if (err.retryAfterMs !== undefined) payload.retryAfterMs = err.retryAfterMs;
    if (err.issues !== undefined) payload.issues = err.issues;
    return payload;
  }
  // A dependency that did not answer (a reset or refused connection, a command
  // timeout) is `unavailable` wherever it surfaced, not an internal fault.
  if (isDependencyFailure(err)) {
    logger.warn({ ...context, err: { message: (err as Error).message, code: (err as { code?: unknown }).code }, code: ErrorCode.Unavailable }, 'dependency unavailable');
    return { code: ErrorCode.Unavailable, message: 'A dependency (Redis or PostgreSQL) is unavailable; retry with backoff', retryable: true };
  }
  // Any other error Redis answered (MOVED or CROSSSLOT from a misrouted command, an error
  // from a script) is still Redis failing the request: `unavailable`, logged as an error.
  if (isRedisReplyError(err)) {
    logger.error({ ...context, err: { message: (err as Error).message, name: (err as Error).name }, code: ErrorCode.Unavailable }, 'redis answered an error');
    return { code: ErrorCode.Unavailable, message: 'A dependency (Redis or PostgreSQL) is unavailable; retry with backoff', retryable: true };
  }
  logger.error({ ...context, err }, 'unexpected error');
  return { code: ErrorCode.Internal, message: 'Internal error', retryable: true };
}

/** An error reply from Redis (ioredis `ReplyError`) or an ioredis Cluster failure, here or as a cause. */
function isRedisReplyError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'ReplyError' || err.name === 'ClusterAllFailedError') return true;
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err && isRedisReplyError(cause);
}

/** Redis or PostgreSQL could not answer: transient connection errors, timeouts, and ioredis giving up on a command. */
function isDependencyFailure(err: unknown): boolean {
  return isTransientError(err) || (err instanceof Error && err.name === 'MaxRetriesPerRequestError');
}

/** A dependency failure (Redis or PostgreSQL unreachable, timed out) as a typed error. */
export function unavailable(what: string, cause: unknown): AppError {
  return new AppError(ErrorCode.Unavailable, `${what} is unavailable`, { cause });
}

/**
 * A failure to start (a dependency unreachable, a bad key file). `main.ts` prints
 * its message as one line and exits non-zero, without a stack trace.
 */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}
