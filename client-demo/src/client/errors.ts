/** Errors of the pinroom browser client: every failure is a `PinroomError` with a wire code and a message for people. */
import { ERRORS, ErrorCode, type ErrorPayload } from '../../../shared/errors.ts';

/** A failed request, with the server's code and a message fit to show a person. */
export class PinroomError extends Error {
  readonly code: ErrorCode | 'network';
  readonly retryAfterMs: number | undefined;
  readonly serverMessage: string;

  constructor(error: ErrorPayload | { code: 'network'; message: string; retryAfterMs?: number }) {
    super(describeError(error.code, error.retryAfterMs));
    this.name = 'PinroomError';
    this.code = error.code;
    this.retryAfterMs = error.retryAfterMs;
    this.serverMessage = error.message;
  }
}

/** A sentence for a person, for each error code (from the shared table), with the wait when the server gave one. */
export function describeError(code: ErrorCode | 'network', retryAfterMs?: number): string {
  if (code === 'network') return 'Cannot reach the server. Check your connection.';
  const message = ERRORS[code]?.message ?? ERRORS.internal.message;
  if (retryAfterMs) return `${message} Try again in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s.`;
  return code === ErrorCode.RateLimited ? `${message} Wait a moment and try again.` : message;
}

/** `err` as a `PinroomError`: anything else thrown on the way (a timeout, a closed socket) is a network failure. */
export function asPinroomError(err: unknown, message = 'no answer from the server'): PinroomError {
  return err instanceof PinroomError ? err : new PinroomError({ code: 'network', message });
}
