/**
 * The auth feature assembled from its parts, for the composition root:
 * access tokens (keys read by `loadKeys()`), refresh tokens and sessions,
 * sign-in rate limits and login backoff, the administrators, the HTTP
 * routes, the Socket.IO handshake and token expiry (socket-auth.ts), the cap
 * on one session's sockets, the periodic session re-check and the removal of
 * old guest accounts. Security events go to the system log as `auth.*`
 * entries. Connections are handed in; nothing here opens one.
 */
import type { Registry } from 'prom-client';
import { DisconnectReason } from '../../shared/events.ts';
import type { Edges, Feature, FeatureDeps } from '../feature.ts';
import type { PinroomServer, PinroomSocket } from '../gateway/create-io.ts';
import type { Scripts } from '../redis/scripts.ts';
import { createGuestRetention } from '../users/guest-retention.ts';
import { createUserRepository } from '../users/user.repository.ts';
import { createAdmins } from './admins.ts';
import { registerHashMetrics, registerTokenMetrics } from './auth-metrics.ts';
import { createAuthService, type AuthAuditEvent, type AuthService } from './auth-service.ts';
import { registerAuthRoutes } from './http.ts';
import { createAuthRateLimits, createLoginBackoff } from './rate-limits.ts';
import { createRefreshStore } from './refresh-store.ts';
import { createSessionCheck } from './session-check.ts';
import { createSessionRecheck } from './session-recheck.ts';
import { createSessionSocketCap } from './session-sockets.ts';
import { loadSigningKeys, type SigningKeys } from './signing-keys.ts';
import { closeSessionSockets, createSocketAuth, type SocketAuth } from './socket-auth.ts';
import { createTokenService } from './tokens.ts';

export interface AuthDeps extends FeatureDeps {
  scripts: Scripts;
  io: PinroomServer;
  /** The Prometheus registry the token and password-hash gauges join. */
  registry: Registry;
  /** Append to the system log (the feed's); a failure is the sink's to log. */
  systemLog: (entry: { type: string; actor: null; payload: Record<string, unknown> }) => Promise<void>;
}

export type Auth = ReturnType<typeof createAuth>;

/** An audit event as a system-log entry: its fields but the time, which the log stamps itself. */
function auditEntry({ type, at: _at, ...details }: AuthAuditEvent) {
  return { type, actor: null, payload: details };
}

export function createAuth(deps: AuthDeps): Feature<AuthService> & {
  isAdmin(userId: string): boolean;
  loadKeys(): Promise<void>;
  attach(socket: PinroomSocket): boolean;
} {
  const { config, logger, db, redis, scripts, keys, io } = deps;
  // Access-token keys are read (or, in development, generated) by loadKeys().
  let signingKeys: SigningKeys | undefined;
  const currentKeys = (): SigningKeys => {
    if (!signingKeys) throw new Error('signing keys are not loaded: start() first');
    return signingKeys;
  };
  const tokens = createTokenService({ config: config.auth, keys: currentKeys });
  registerTokenMetrics(deps.registry, tokens);
  // Whether sessions are still active: the handshake's check, batched per event-loop turn; `states(ids)` for many at once.
  const sessions = createSessionCheck({ scripts, keys });
  const admins = createAdmins(config.auth);
  const service = createAuthService({
    config: config.auth,
    logger,
    users: createUserRepository({ db }),
    tokens,
    refresh: createRefreshStore({ scripts, keys, config: config.auth }),
    sessions,
    limits: createAuthRateLimits({ redis, keys, limits: config.auth.rateLimits }),
    backoff: createLoginBackoff({ redis, scripts, keys, config: config.auth }),
    signingKeys: currentKeys,
    onSessionRevoked: (sessionId) => closeSessionSockets(io, sessionId, DisconnectReason.SessionRevoked),
    audit: (event) => void deps.systemLog(auditEntry(event)),
  });
  registerHashMetrics(deps.registry, service);
  const sessionSockets = createSessionSocketCap({ io, max: config.auth.sessionMaxSockets });
  const sessionRecheck = createSessionRecheck({ io, sessionStates: (ids) => sessions.states(ids), intervalMs: config.auth.sessionRecheckMs, logger });
  const guestRetention = createGuestRetention({ db, config: config.auth, logger });
  let socketAuth: SocketAuth | undefined;
  const registered = (): SocketAuth => {
    if (!socketAuth) throw new Error('auth routes and handlers are not registered: register() first');
    return socketAuth;
  };

  return {
    service,
    /** Whether `userId` is an administrator (server/auth/admins.ts): the only place that decides it. */
    isAdmin: (userId: string): boolean => admins.isAdmin(userId),

    /** The HTTP routes, the handshake middlewares (token, then the session's socket cap), `auth:refresh` and the token-expiry guard. */
    register({ router, http }: Edges): void {
      registerAuthRoutes(http, { auth: service });
      const created = createSocketAuth({ io, auth: service, router, config, logger });
      socketAuth = created;
      io.use((socket, next) => void created.middleware(socket, next));
      io.use((socket, next) => sessionSockets.middleware(socket, next));
      router.addGuard(created.guard);
    },

    /** Read (or, in development, generate) the access-token keys; before any connection, so a bad key fails start-up first. */
    async loadKeys(): Promise<void> {
      signingKeys = await loadSigningKeys(config.auth, config.env);
      logger.info({ kid: signingKeys.currentKid, source: signingKeys.source, verifyKeys: signingKeys.jwks.keys.length }, 'access-token keys loaded');
    },

    /**
     * Call first in the connection listener: false when the socket is over its
     * session's cap (it is being closed); otherwise it joins its user and
     * session groups and its token's expiry is armed.
     */
    attach(socket: PinroomSocket): boolean {
      if (!sessionSockets.admit(socket)) return false;
      registered().attach(socket);
      return true;
    },

    /** Begin the session re-check and the guest sweep. */
    async start(): Promise<void> {
      sessionRecheck.start();
      guestRetention.start();
    },

    /** Stop the expiry timers, the re-check, the guest sweep and the hash workers. */
    async stop(): Promise<void> {
      socketAuth?.stop();
      await Promise.all([sessionRecheck.stop(), guestRetention.stop(), service.stop()]);
    },
  };
}
