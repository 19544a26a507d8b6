/** Errors of the pinroom browser client: every failure is a `PinroomError` with a wire code and a message for people. */
import { ERRORS, ErrorCode, type ErrorPayload } from '../../../shared/errors.ts';

/** A failed request, with the server's code and a message fit to show a person. */
export class PinroomError extends Error {
  readonly code: ErrorCode | 'network';
  readonly retryAfterMs: number | undefined;
  readonly serverMessage: string;

  constructor(error: ErrorPayload | { code: 'network'; message: string; retryAfterMs?: number }) {
    super(describeError(error.code, error.retryAfterMs, error.code === ErrorCode.BadRequest ? badRequestReason(error) : undefined));
    this.name = 'PinroomError';
    this.code = error.code;
    this.retryAfterMs = error.retryAfterMs;
    this.serverMessage = error.message;
  }
}

/**
 * A sentence for a person, for each error code (from the shared table), with the
 * wait when the server gave one, and for `bad_request` what was wrong (`reason`,
 * from `badRequestReason`) when known.
 */
export function describeError(code: ErrorCode | 'network', retryAfterMs?: number, reason?: string): string {
  if (code === 'network') return 'Cannot reach the server. Check your connection.';
  const message = ERRORS[code]?.message ?? ERRORS.internal.message;
  if (code === ErrorCode.BadRequest && reason) return `${message.replace(/\.$/, '')}: ${reason.replace(/\.$/, '')}.`;
  if (retryAfterMs) return `${message} Try again in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s.`;
  return code === ErrorCode.RateLimited ? `${message} Wait a moment and try again.` : message;
}

/** `err` as a `PinroomError`: anything else thrown on the way (a timeout, a closed socket) is a network failure. */
export function asPinroomError(err: unknown, message = 'no answer from the server'): PinroomError {
  return err instanceof PinroomError ? err : new PinroomError({ code: 'network', message });
}

/** Longest reason shown; a longer one is cut with an ellipsis. */
const REASON_MAX = 160;
/** The `path: ` that the server puts before each issue's reason (`payload.text: `). */
const ISSUE_PATH = /^([\w$-]+(?:\.[\w$-]+)*): /;

/**
 * What was wrong with a `bad_request`, in the schema's words: the reason of the
 * issue with the deepest field path (`payload.text` over `payload`: the field
 * itself), without that path, which names wire fields rather than what a person
 * typed. Only from `issues` (the server's validation gives them): the other
 * `bad_request`s (a malformed event or body) are a client's fault, and their
 * message is not for people. One line, at most `REASON_MAX` characters;
 * undefined when there are no issues.
 */
export function badRequestReason(error: Pick<ErrorPayload, 'issues'>): string | undefined {
  const depth = (issue: string) => ISSUE_PATH.exec(issue)?.[1]?.split('.').length ?? 0;
  const issues = Array.isArray(error.issues) ? error.issues.filter((i): i is string => typeof i === 'string' && i.trim() !== '') : [];
  const issue = issues.reduce<string | undefined>((best, i) => (best === undefined || depth(i) > depth(best) ? i : best), undefined);
  const reason = issue?.replace(ISSUE_PATH, '').replace(/\s+/g, ' ').trim();
  if (!reason) return undefined;
  return reason.length > REASON_MAX ? `${reason.slice(0, REASON_MAX - 1)}…` : reason;
}
