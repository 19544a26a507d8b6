/**
 * Error codes of the pinroom wire protocol, shared by server and browser.
 *
 * A code never changes meaning once published. Every failed ack, every HTTP
 * error body and every `connect_error` carries exactly one of these codes.
 * `retryable` tells a client whether the same request may succeed later
 * unchanged; `reconnect` whether a disconnected socket should reconnect.
 */
export const ErrorCode = {
  /** The payload failed validation: wrong shape, type, size or value. Fix the request; do not retry. */
  BadRequest: 'bad_request',
  /** The frame or body is larger than the configured limit. */
  PayloadTooLarge: 'payload_too_large',
  /** No valid access token: missing, malformed, forged, wrong issuer/audience/type. Sign in again. */
  Unauthorized: 'unauthorized',
  /** The access token expired. Refresh it (`POST /auth/refresh`, or `auth:refresh` on a live socket). */
  TokenExpired: 'token_expired',
  /** The session (refresh-token family) was revoked by logout or reuse detection. Sign in again. */
  SessionRevoked: 'session_revoked',
  /** A refresh token that was already rotated came back: the whole session was revoked. */
  TokenReused: 'token_reused',
  /** Username or password is wrong. */
  InvalidCredentials: 'invalid_credentials',
  /** The username is already registered. */
  UsernameTaken: 'username_taken',
  /** Authenticated, but not allowed to do this (guest creating a room, non-host control, non-member). */
  Forbidden: 'forbidden',
  /** The resource does not exist. */
  NotFound: 'not_found',
  /** No live room has this PIN (never existed, or ended). */
  RoomNotFound: 'room_not_found',
  /** The room is locked by its host: no new members. */
  RoomLocked: 'room_locked',
  /** The room has reached its member limit. */
  RoomFull: 'room_full',
  /** The user is banned from this room until a time given in the message. */
  Banned: 'banned',
  /** Too many requests; wait `retryAfterMs` before trying again. */
  RateLimited: 'rate_limited',
  /** No free PIN could be claimed in the bounded number of attempts. Retry later. */
  PinUnavailable: 'pin_unavailable',
  /** The request conflicts with the current state (e.g. the room already ended). */
  Conflict: 'conflict',
  /** A dependency (Redis, PostgreSQL) is unreachable or timed out. Retry with backoff. */
  Unavailable: 'unavailable',
  /** An unexpected server fault. The message is generic; the cause is in the server log. */
  Internal: 'internal',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const ERROR_CODES: readonly ErrorCode[] = Object.values(ErrorCode);

/** Whether a request that failed with this code may succeed if repeated unchanged later. */
export const RETRYABLE: Readonly<Record<ErrorCode, boolean>> = {
  bad_request: false,
  payload_too_large: false,
  unauthorized: false,
  token_expired: true,
  session_revoked: false,
  token_reused: false,
  invalid_credentials: false,
  username_taken: false,
  forbidden: false,
  not_found: false,
  room_not_found: false,
  room_locked: true,
  room_full: true,
  banned: true,
  rate_limited: true,
  pin_unavailable: true,
  conflict: false,
  unavailable: true,
  internal: true,
};

/** The error part of a failed ack or HTTP error body. */
export interface ErrorPayload {
  code: ErrorCode;
  message: string;
  retryable?: boolean;
  /** For `rate_limited` (and `banned`): milliseconds until a retry may succeed. */
  retryAfterMs?: number;
  /** For `bad_request`: which fields were wrong, as `path: reason` strings. */
  issues?: string[];
}

/** Every Socket.IO ack has this shape. */
export type Ack<T> = { ok: true; data: T } | { ok: false; error: ErrorPayload };

/** The callback a client passes as the last argument of an event that expects an answer. */
export type AckFn<T> = (response: Ack<T>) => void;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
