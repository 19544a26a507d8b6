/**
 * Accounts and sessions: guest and registered sign-in, refresh rotation with
 * reuse detection, logout, and access-token authentication with the
 * session's revocation state. HTTP routes and the socket middleware are thin
 * edges over this service.
 *
 * Security events (sign-ins, failed logins, logouts, reuse alarms) are logged
 * and passed to the optional `audit` callback. Tokens and password hashes are
 * never logged, returned beyond the issuing response, or cached.
 *
 * Under attack: per-address limits key on the address's `addressKey` (an
 * IPv6 /64 is one client); a login is also held to the account's backoff
 * across all addresses; every password hash (login, register, and the dummy
 * one for unknown usernames) runs in a bounded number of slots, the rest wait
 * briefly or get `rate_limited`, and in low-priority worker threads
 * (`hash-workers.ts`), so a flood cannot take the CPU from sockets.
 *
 * Accounts are created all-or-nothing: the session is opened in Redis first
 * for a chosen user id, then the row is inserted; if the insert fails the
 * session is discarded. A failure at either step leaves no account behind,
 * so the same register can be retried.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { GuestBody, LoginBody, RefreshBody, RegisterBody, SessionResponse, TokenPair } from '../../shared/schemas.ts';
import type { AuthAuditEntry } from '../../shared/feed-entries.ts';
import type { AuthConfig } from '../config.ts';
import { AppError, ErrorCode } from '../errors.ts';
import { addressKey } from '../gateway/address.ts';
import type { UserRow } from '../db/tables.ts';
import { toUserView, type UserRepository } from '../users/user.repository.ts';
import { createHashSlots } from './hash-slots.ts';
import { createHashWorkers } from './hash-workers.ts';
import { burnVerification, DEFAULT_SCRYPT, hashPassword, verifyPassword } from './passwords.ts';
import type { AuthRateLimits, LoginBackoff } from './rate-limits.ts';
import type { IssuedRefresh, RefreshStore } from './refresh-store.ts';
import type { SessionCheck } from './session-check.ts';
import type { SigningKeys } from './signing-keys.ts';
import type { AccessClaims, TokenService } from './tokens.ts';

/** Where a request came from, for rate limits and the audit trail. */
export interface RequestContext {
  /** Client address (see `server/gateway/address.ts`). */
  address: string;
}

/** How a session was opened. */
export type SignInMethod = Extract<AuthAuditEntry, { type: 'auth.signed_in' }>['payload']['method'];

/**
 * A security event, for a system log stream: an `AuthAuditEntry`'s type and
 * payload fields side by side, and `at` (ms since the epoch), which the
 * system log entry does not carry. Never carries a token, a password or a hash.
 */
export type AuthAuditEvent = AuthAuditEntry extends infer E ? (E extends AuthAuditEntry ? { type: E['type']; at: number } & E['payload'] : never) : never;

/** Why a session stopped being honoured. */
export type RevocationReason = 'logout' | 'reuse';

export interface AuthServiceDeps {
  config: AuthConfig;
  logger: Logger;
  users: UserRepository;
  tokens: TokenService;
  refresh: RefreshStore;
  /** Whether a session is still active (read from Redis on every check, batched per event-loop turn). */
  sessions: SessionCheck;
  limits: AuthRateLimits;
  /** The per-account login backoff (`createLoginBackoff`). */
  backoff: LoginBackoff;
  signingKeys: () => SigningKeys;
  /**
   * Receives every security event after it is logged. Optional; a throwing
   * callback is logged and otherwise ignored, so it can never fail a sign-in.
   */
  audit?: (event: AuthAuditEvent) => void;
  /** Called once a session is revoked, to close its live sockets on every node. */
  onSessionRevoked?: (sessionId: string, reason: RevocationReason) => void;
  now?: () => number;
}

export type AuthService = ReturnType<typeof createAuthService>;

export function createAuthService(deps: AuthServiceDeps) {
  const { logger, users, tokens, refresh, limits, backoff } = deps;
  const now = deps.now ?? Date.now;
  const log = logger.child({ component: 'auth' });
  const hashing = createHashSlots(deps.config.hashing);
  // As many worker threads as slots: a slot's hash never waits for a thread.
  const workers = createHashWorkers({ size: deps.config.hashing.concurrency });
  const derive = workers.derive;
  const guestMaxAgeSeconds = deps.config.guestRetentionDays * 86_400;

  const emit = (event: AuthAuditEvent, level: 'info' | 'warn' = 'info') => {
    log[level]({ audit: event }, event.type);
    try {
      deps.audit?.(event);
    } catch (err) {
      log.error({ err, type: event.type }, 'audit callback failed');
    }
  };

  /** Count against a per-address limit; `key` already holds the address's `addressKey`. */
  const limited = async (name: Parameters<AuthRateLimits['consume']>[0], key: string, ctx: RequestContext) => {
    try {
      await limits.consume(name, key);
    } catch (err) {
      if (err instanceof AppError && err.code === ErrorCode.RateLimited) emit({ type: 'auth.rate_limited', at: now(), limit: name, address: ctx.address }, 'warn');
      throw err;
    }
  };

  type SessionUser = Pick<UserRow, 'id' | 'display_name' | 'kind' | 'username'>;

  async function signedIn(user: SessionUser, session: IssuedRefresh, method: SignInMethod, ctx: RequestContext): Promise<SessionResponse> {
    const access = await tokens.sign({ userId: user.id, sessionId: session.sessionId, name: user.display_name, kind: user.kind, notAfter: session.sessionExpiresAt });
    emit({ type: 'auth.signed_in', at: now(), method, userId: user.id, sessionId: session.sessionId, kind: user.kind, address: ctx.address });
    return { user: toUserView(user), accessToken: access.token, refreshToken: session.token, expiresIn: access.expiresIn };
  }

  async function openSession(user: SessionUser, method: SignInMethod, ctx: RequestContext): Promise<SessionResponse> {
    return signedIn(user, await refresh.issue(user.id), method, ctx);
  }

  /**
   * A new account and its first session, all or nothing: the session first
   * (Redis), then the row (PostgreSQL) under the same id. If Redis fails
   * nothing was written; if the insert fails the session is discarded (and
   * was never handed out: a leftover cannot be used, its user does not exist).
   */
  async function createAccount(insert: (id: string) => Promise<UserRow>, method: SignInMethod, ctx: RequestContext, maxAgeSeconds?: number): Promise<SessionResponse> {
    const id = randomUUID();
    const session = await refresh.issue(id, maxAgeSeconds === undefined ? {} : { maxAgeSeconds });
    let user: UserRow;
    try {
      user = await insert(id);
    } catch (err) {
      await refresh.discard(session).catch((discardErr: unknown) => log.warn({ err: discardErr, sessionId: session.sessionId }, 'could not discard the session of an account that was not created'));
      throw err;
    }
    return signedIn(user, session, method, ctx);
  }

  function revoked(sessionId: string, reason: RevocationReason) {
    try {
      deps.onSessionRevoked?.(sessionId, reason);
    } catch (err) {
      log.error({ err, sessionId }, 'closing the sockets of a revoked session failed');
    }
  }

  return {
    /** Create a guest user and open a session for it; both last at most `GUEST_RETENTION_DAYS`. */
    async guest(body: GuestBody, ctx: RequestContext): Promise<SessionResponse> {
      await limited('guestIp', addressKey(ctx.address), ctx);
      return createAccount((id) => users.createGuest(body.displayName, id), 'guest', ctx, guestMaxAgeSeconds);
    },

    /** Create a registered user (`username_taken` if it exists) and open a session. */
    async register(body: RegisterBody, ctx: RequestContext): Promise<SessionResponse> {
      await limited('registerIp', addressKey(ctx.address), ctx);
      const passwordHash = await hashing.run(() => hashPassword(body.password, DEFAULT_SCRYPT, derive));
      return createAccount((id) => users.createRegistered({ id, username: body.username, displayName: body.displayName ?? body.username, passwordHash }), 'register', ctx);
    },

    /** Check a username and password; `invalid_credentials` for either being wrong, in the same time. */
    async login(body: LoginBody, ctx: RequestContext): Promise<SessionResponse> {
      const address = addressKey(ctx.address);
      const userIpKey = `${body.username.toLowerCase()}|${address}`;
      await limited('loginIp', address, ctx);
      await limited('loginUserIp', userIpKey, ctx);
      const user = await users.findByUsername(body.username);
      // In a hash slot: the account's backoff first (no hash while it runs), then the hash.
      const ok = await hashing.run(async () => {
        await backoff.attempt(body.username);
        return user?.password_hash ? verifyPassword(body.password, user.password_hash, derive) : (await burnVerification(body.password, derive), false);
      });
      if (!user || !ok) {
        emit({ type: 'auth.login_failed', at: now(), username: body.username.toLowerCase(), address: ctx.address }, 'warn');
        throw new AppError(ErrorCode.InvalidCredentials, 'Wrong username or password');
      }
      await Promise.all([limits.reset('loginUserIp', userIpKey), backoff.succeeded(body.username)]);
      return openSession(user, 'login', ctx);
    },

    /** Password hashes running and waiting on this node, and refusals so far (metrics). */
    hashStats: () => hashing.stats(),

    /** Terminate the hashing threads (shutdown). */
    stop: () => workers.stop(),

    /** Rotate a refresh token. A replayed rotated token revokes its whole session (`token_reused`). */
    async refresh(body: RefreshBody, ctx: RequestContext): Promise<TokenPair> {
      const result = await refresh.rotate(body.refreshToken);
      switch (result.status) {
        case 'ok': {
          const user = await users.findById(result.userId);
          if (!user) throw new AppError(ErrorCode.Unauthorized, 'The account no longer exists');
          const access = await tokens.sign({ userId: user.id, sessionId: result.sessionId, name: user.display_name, kind: user.kind, notAfter: result.sessionExpiresAt });
          return { accessToken: access.token, refreshToken: result.token, expiresIn: access.expiresIn };
        }
        case 'race':
          throw new AppError(ErrorCode.Conflict, 'This refresh token was rotated by a concurrent request a moment ago; use the token that request received');
        case 'reused':
          emit({ type: 'auth.token_reused', at: now(), userId: result.userId, sessionId: result.sessionId, address: ctx.address }, 'warn');
          revoked(result.sessionId, 'reuse');
          throw new AppError(ErrorCode.TokenReused, 'This refresh token was already used: the session has been revoked; sign in again');
        case 'revoked':
          throw new AppError(ErrorCode.SessionRevoked, 'This session was revoked; sign in again');
        case 'invalid':
          throw new AppError(ErrorCode.Unauthorized, 'The refresh token is unknown or expired; sign in again');
      }
    },

    /** Revoke the session of a refresh token. Idempotent for a session that is already revoked. */
    async logout(body: RefreshBody, ctx: RequestContext): Promise<void> {
      const result = await refresh.revoke(body.refreshToken, 'logout');
      if (result.status === 'invalid') throw new AppError(ErrorCode.Unauthorized, 'The refresh token is unknown or expired');
      if (result.status === 'revoked') {
        emit({ type: 'auth.logged_out', at: now(), userId: result.userId, sessionId: result.sessionId, address: ctx.address });
      }
      revoked(result.sessionId, 'logout');
    },

    /**
     * Verify an access token and that its session is still active (one Redis
     * read, shared with the other checks of the same event-loop turn). Throws
     * `unauthorized`, `token_expired`, `session_revoked` or `unavailable`.
     */
    async authenticate(token: unknown): Promise<AccessClaims> {
      const claims = await tokens.verify(token);
      const state = await deps.sessions.state(claims.sessionId);
      if (state !== 'active') throw new AppError(ErrorCode.SessionRevoked, 'This session was revoked or has ended; sign in again');
      return claims;
    },

    /** The public signing keys, as a JWK Set. */
    jwks() {
      return deps.signingKeys().jwks;
    },
  };
}
