/**
 * Error codes of the pinroom wire protocol, shared by server and browser.
 *
 * A code never changes meaning once published. Every failed ack, every HTTP
 * error body and every `connect_error` carries exactly one of these codes;
 * what each means, its HTTP status and whether to retry are in `ERRORS`.
 */
export const ErrorCode = {
  BadRequest: 'bad_request',
  PayloadTooLarge: 'payload_too_large',
  Unauthorized: 'unauthorized',
  TokenExpired: 'token_expired',
  SessionRevoked: 'session_revoked',
  TokenReused: 'token_reused',
  InvalidCredentials: 'invalid_credentials',
  UsernameTaken: 'username_taken',
  Forbidden: 'forbidden',
  NotFound: 'not_found',
  RoomNotFound: 'room_not_found',
  RoomLocked: 'room_locked',
  RoomFull: 'room_full',
  NicknameTaken: 'nickname_taken',
  AwaitingApproval: 'awaiting_approval',
  Banned: 'banned',
  RateLimited: 'rate_limited',
  PinUnavailable: 'pin_unavailable',
  Conflict: 'conflict',
  Unavailable: 'unavailable',
  Internal: 'internal',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** What is known of one error code. */
export interface ErrorFacts {
  /** HTTP status of an HTTP error body with this code. */
  http: number;
  /** Whether a request that failed with this code may succeed if repeated unchanged later. */
  retryable: boolean;
  /** What the code means and what a client should do (docs/protocol.md's error table is written from it). */
  meaning: string;
  /** A sentence fit to show a person (the demo's messages). */
  message: string;
}

/**
 * Every error code with its facts: the one table the server (HTTP status,
 * default retryability), the demo (messages) and docs/protocol.md (written
 * by `npm run docs`) take them from.
 */
export const ERRORS: Readonly<Record<ErrorCode, Readonly<ErrorFacts>>> = {
  bad_request: {
    http: 400,
    retryable: false,
    meaning: 'The payload failed validation (shape, type, size, value). Fix the request.',
    message: 'That input is not valid.',
  },
  payload_too_large: {
    http: 413,
    retryable: false,
    meaning: 'The body or frame is over the configured limit.',
    message: 'That is too large to send.',
  },
  unauthorized: {
    http: 401,
    retryable: false,
    meaning: 'No valid access token: missing, malformed, forged, wrong issuer, audience or type. Sign in again.',
    message: 'Your session has ended. Please sign in again.',
  },
  token_expired: {
    http: 401,
    retryable: true,
    meaning: 'The access token expired. Refresh it (`POST /auth/refresh`, or `auth:refresh` on a live socket) and retry.',
    message: 'Your session has ended. Please sign in again.',
  },
  session_revoked: {
    http: 401,
    retryable: false,
    meaning: 'The session was revoked (logout, or reuse detection). Sign in again; do not reconnect with the same token.',
    message: 'Your session has ended. Please sign in again.',
  },
  token_reused: {
    http: 401,
    retryable: false,
    meaning: 'A refresh token that was already rotated came back: the whole session is revoked. Sign in again.',
    message: 'Your session has ended. Please sign in again.',
  },
  invalid_credentials: {
    http: 401,
    retryable: false,
    meaning: 'Username or password is wrong.',
    message: 'Wrong username or password.',
  },
  username_taken: {
    http: 409,
    retryable: false,
    meaning: 'The username is already registered.',
    message: 'That username is taken. Pick another.',
  },
  forbidden: {
    http: 403,
    retryable: false,
    meaning: 'Authenticated but not allowed (a guest creating a room, a non-host using host controls, a non-member).',
    message: 'You are not allowed to do that.',
  },
  not_found: {
    http: 404,
    retryable: false,
    meaning: 'No such resource or route.',
    message: 'Something went wrong. Try again.',
  },
  room_not_found: {
    http: 404,
    retryable: false,
    meaning: 'No live room has this PIN (never existed, or ended): same answer and timing for both.',
    message: 'No room has that PIN. Check the number on the host’s screen.',
  },
  room_locked: {
    http: 423,
    retryable: true,
    meaning: 'The host locked the room. It may be unlocked later.',
    message: 'The host has locked this room. Ask them to unlock it.',
  },
  nickname_taken: {
    http: 409,
    retryable: false,
    meaning: '`room:join`: another member of the room already goes by this nickname (trimmed, case-insensitively). Pick another.',
    message: 'Someone in this room already uses that nickname. Pick another.',
  },
  room_full: {
    http: 409,
    retryable: true,
    meaning: 'The room is at its member limit.',
    message: 'This room is full.',
  },
  awaiting_approval: {
    http: 403,
    retryable: false,
    meaning: '`room:join` into a room in approval mode: the joiner is in its waiting room. Do not retry; wait for `room:admitted` (then `room:join` again) or `room:denied`.',
    message: 'The host admits each new member. Please wait.',
  },
  banned: {
    http: 403,
    retryable: true,
    meaning: 'Kicked with a ban; `retryAfterMs` says when rejoining is allowed.',
    message: 'The host removed you from this room.',
  },
  rate_limited: {
    http: 429,
    retryable: true,
    meaning: 'Too many requests; wait `retryAfterMs` (HTTP: `Retry-After`).',
    message: 'Too many tries.',
  },
  pin_unavailable: {
    http: 503,
    retryable: true,
    meaning: 'No free PIN could be claimed in the bounded attempts. Retry later.',
    message: 'The server is busy. Try again in a moment.',
  },
  conflict: {
    http: 409,
    retryable: false,
    meaning: 'The request conflicts with the current state (for instance the room already ended).',
    message: 'That is no longer possible: the room changed.',
  },
  unavailable: {
    http: 503,
    retryable: true,
    meaning: 'Redis or PostgreSQL is unreachable or timed out. Retry with backoff.',
    message: 'The server is busy. Try again in a moment.',
  },
  internal: {
    http: 500,
    retryable: true,
    meaning: 'An unexpected fault; the message is generic and the cause is in the server log.',
    message: 'Something went wrong. Try again.',
  },
};

export const ERROR_CODES: readonly ErrorCode[] = Object.values(ErrorCode);

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
