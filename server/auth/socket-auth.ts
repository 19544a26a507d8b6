/**
 * Authenticated sockets.
 *
 * - `middleware` (for `io.use`) verifies the handshake's `auth: { token }` and
 *   that its session is active, and fills `socket.data`. A refusal reaches the
 *   client as `connect_error` with `err.data.code` = `unauthorized`,
 *   `token_expired` or `session_revoked` (or `unavailable` when Redis is down).
 * - `attach(socket)` (first thing in the connection listener) joins the
 *   socket to its `user:{id}` and `session:{sid}` groups and arms its token's
 *   deadlines (two shared timers, see `deadlines.ts`): `auth:expiring` about a
 *   minute before the token's `exp`, and a disconnect with `token_expired`
 *   when the token expired and no fresh one arrived within the grace.
 *   `auth:refresh` (a router handler) swaps the token and moves both deadlines.
 * - `guard` (for the event router) refuses every event but `auth:refresh`
 *   from a socket whose token expired, so no handler works for it.
 * - `closeSession` disconnects a session's sockets on every node (through the
 *   Redis adapter) with `session_revoked`.
 *
 * Before an auth disconnect the server sends `auth:closed { code }`, then a
 * Socket.IO disconnect (`io server disconnect` on the client, which does not
 * reconnect by itself).
 *
 * Cost of one handshake (docs/auth.md): the token's verification (CPU only:
 * ≈ 70 µs, ≈ 1 µs for a token this node verified before), one Redis round
 * trip for the session check shared by every handshake of the event-loop
 * turn, no PostgreSQL; `attach` joins two groups and adds two deadlines.
 * Nothing grows with rooms or sockets.
 */
import type { Logger } from 'pino';
import { DisconnectReason } from '../../shared/events.ts';
import { AuthRefreshPayload, type AuthClosed } from '../../shared/schemas.ts';
import type { AuthConfig, Config } from '../config.ts';
import { AppError, ErrorCode, toErrorPayload } from '../errors.ts';
import { handshakeAddress } from '../gateway/address.ts';
import type { EventRouter, Guard } from '../gateway/ack.ts';
import type { PinroomServer, PinroomSocket } from '../gateway/create-io.ts';
import { createDeadlines } from '../gateway/deadlines.ts';
import { socketRooms } from '../gateway/socket-rooms.ts';
import type { AuthService } from './auth-service.ts';

/** A `connect_error` as the client sees it: `err.message` and `err.data`. */
export type HandshakeError = Error & { data: { code: ErrorCode; message: string; retryable?: boolean } };

export type SocketAuth = ReturnType<typeof createSocketAuth>;

/**
 * Tell every socket of a session, on every node, why it is closed, and
 * disconnect it: here directly, elsewhere through `session:close` on the
 * adapter's main channel. Not a broadcast to the session's room: with the
 * sharded adapter that goes to the room's own channel, which a node
 * subscribes only once the socket joined it (an SSUBSCRIBE in flight, or on
 * a cluster a subscriber connection still opening, would miss the close).
 */
export function closeSessionSockets(io: PinroomServer, sessionId: string, code: AuthClosed['code']): void {
  closeLocalSessionSockets(io, sessionId, code);
  io.serverSideEmit('session:close', sessionId, code);
}

function closeLocalSessionSockets(io: PinroomServer, sessionId: string, code: AuthClosed['code']): void {
  const group = io.local.in(socketRooms.session(sessionId));
  group.emit('auth:closed', { code });
  group.disconnectSockets(false);
}

export function createSocketAuth({
  io,
  auth,
  router,
  config,
  logger,
  now = Date.now,
}: {
  io: PinroomServer;
  auth: AuthService;
  router: EventRouter;
  config: Pick<Config, 'http'> & { auth: Pick<AuthConfig, 'expiringNoticeSeconds' | 'expiryGraceMs'> };
  logger: Logger;
  now?: () => number;
}) {
  const log = logger.child({ component: 'socket-auth' });
  io.on('session:close', (sessionId, code) => {
    if (typeof sessionId === 'string' && typeof code === 'string') closeLocalSessionSockets(io, sessionId, code);
  });
  const noticeMs = config.auth.expiringNoticeSeconds * 1000;
  const graceMs = config.auth.expiryGraceMs;

  // The expiry notice and the expiry disconnect of every socket's current token,
  // on two shared timers (no Timeout per socket). A socket's deadlines are
  // derived from `socket.data.tokenExpiresAt`, so they can be found again to be moved.
  const noticeAt = (expiresAt: number) => expiresAt - noticeMs;
  const closeAt = (expiresAt: number) => expiresAt + graceMs;
  const notices = createDeadlines<PinroomSocket>({
    now,
    onDue(socket) {
      if (!socket.connected) return;
      socket.emit('auth:expiring', { expiresIn: Math.max(0, Math.floor((socket.data.tokenExpiresAt - now()) / 1000)) });
    },
  });
  const expiries = createDeadlines<PinroomSocket>({
    now,
    onDue(socket) {
      if (socket.data.tokenExpiresAt <= now()) close(socket, DisconnectReason.TokenExpired);
    },
  });

  const unschedule = (socket: PinroomSocket) => {
    const expiresAt = socket.data.tokenExpiresAt;
    notices.remove(noticeAt(expiresAt), socket);
    expiries.remove(closeAt(expiresAt), socket);
  };

  /** Arm the expiry notice and the expiry disconnect of `socket.data.tokenExpiresAt` (unschedule the previous token's first). */
  const schedule = (socket: PinroomSocket) => {
    const expiresAt = socket.data.tokenExpiresAt;
    notices.add(noticeAt(expiresAt), socket);
    expiries.add(closeAt(expiresAt), socket);
  };

  const close = (socket: PinroomSocket, code: AuthClosed['code']) => {
    unschedule(socket);
    if (!socket.connected) return;
    log.info({ userId: socket.data.user?.id, sessionId: socket.data.sessionId, code }, 'closing socket');
    socket.emit('auth:closed', { code });
    socket.disconnect(false);
  };

  router.onDisconnect(unschedule);

  router.handle('auth:refresh', AuthRefreshPayload, async (socket, { token }) => {
    const claims = await auth.authenticate(token);
    if (claims.userId !== socket.data.user.id) throw new AppError(ErrorCode.Unauthorized, 'The token belongs to another user');
    if (socket.disconnected) return { expiresIn: 0 };
    if (claims.sessionId !== socket.data.sessionId) {
      void socket.leave(socketRooms.session(socket.data.sessionId));
      void socket.join(socketRooms.session(claims.sessionId));
      socket.data.sessionId = claims.sessionId;
    }
    socket.data.user = { ...socket.data.user, name: claims.name, kind: claims.kind };
    unschedule(socket);
    socket.data.tokenExpiresAt = claims.expiresAt;
    schedule(socket);
    return { expiresIn: Math.max(0, Math.floor((claims.expiresAt - now()) / 1000)) };
  });

  const guard: Guard = (socket, event) => {
    if (event === 'auth:refresh') return;
    if (socket.data.tokenExpiresAt <= now()) {
      throw new AppError(ErrorCode.TokenExpired, 'The access token of this socket expired; send auth:refresh with a fresh one');
    }
  };

  return {
    /** `io.use(socketAuth.middleware)`. */
    async middleware(socket: PinroomSocket, next: (err?: Error) => void): Promise<void> {
      const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
      try {
        const claims = await auth.authenticate(token);
        socket.data.user = { id: claims.userId, name: claims.name, kind: claims.kind };
        socket.data.sessionId = claims.sessionId;
        socket.data.tokenExpiresAt = claims.expiresAt;
        socket.data.address = handshakeAddress(socket.handshake, config.http.trustProxy);
        next();
      } catch (err) {
        const payload = toErrorPayload(err, log, { phase: 'handshake' });
        const error = new Error(payload.message) as HandshakeError;
        error.data = { code: payload.code, message: payload.message, retryable: payload.retryable ?? false };
        next(error);
      }
    },

    /** Call first in the connection listener: the socket's groups and its token's deadlines. */
    attach(socket: PinroomSocket): void {
      void socket.join([socketRooms.user(socket.data.user.id), socketRooms.session(socket.data.sessionId)]);
      schedule(socket);
    },

    /** Stop the shared timers (shutdown). */
    stop(): void {
      notices.clear();
      expiries.clear();
    },

    guard,

    /** Disconnect a session's sockets on every node with `session_revoked`. */
    closeSession(sessionId: string): void {
      closeSessionSockets(io, sessionId, DisconnectReason.SessionRevoked);
    },
  };
}
