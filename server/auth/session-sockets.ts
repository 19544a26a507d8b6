/**
 * A cap on the sockets one session (one sign-in) holds on this node,
 * `SESSION_MAX_SOCKETS`: one access token could otherwise open sockets until
 * the per-address cap (which a classroom behind one NAT shares) runs out.
 *
 * The count is the size of the session's Socket.IO group (`session:{sid}`,
 * which every authenticated socket joins and leaves with its session), so
 * the cap keeps no state of its own and follows `auth:refresh` moving a
 * socket to another session. Per node: sockets of one session on other nodes
 * are not counted (a load balancer that is sticky by address keeps a
 * client's sockets together; per-user event limits hold across nodes).
 *
 * - `middleware` (an `io.use` after the auth middleware) refuses a handshake
 *   whose session is at the cap: `connect_error` with `rate_limited`.
 * - `admit(socket)` (in the connection listener, before the socket joins its
 *   groups) closes a socket that raced past the middleware, so the cap holds
 *   exactly: connection listeners run one at a time and join synchronously.
 */
import { ErrorCode, type ErrorPayload } from '../../shared/errors.ts';
import type { PinroomServer, PinroomSocket } from '../gateway/create-io.ts';
import { socketRooms } from '../gateway/socket-rooms.ts';

/** How long a client refused for too many sockets should wait before trying again, ms. */
const RETRY_AFTER_MS = 5000;

export function createSessionSocketCap({ io, max }: { io: PinroomServer; max: number }) {
  // The adapter is replaced when the Redis adapter is attached (app.start), so look it up each time.
  const open = (sessionId: string) => io.of('/').adapter.rooms.get(socketRooms.session(sessionId))?.size ?? 0;
  const message = `This session already holds ${max} sockets on this node (SESSION_MAX_SOCKETS); close one first`;
  const refusal: ErrorPayload = { code: ErrorCode.RateLimited, message, retryable: true, retryAfterMs: RETRY_AFTER_MS };

  return {
    /** `io.use(cap.middleware)`, after the auth middleware (it reads `socket.data.sessionId`). */
    middleware(socket: PinroomSocket, next: (err?: Error) => void): void {
      if (open(socket.data.sessionId) < max) return next();
      // A `connect_error` whose `err.data` is the error payload, like the auth middleware's refusals.
      next(Object.assign(new Error(message), { data: refusal }));
    },

    /** Call first in the connection listener; false means the socket was over the cap and is being closed. */
    admit(socket: PinroomSocket): boolean {
      if (open(socket.data.sessionId) < max) return true;
      socket.emit('server:error', { event: '*', error: refusal });
      socket.disconnect(true);
      return false;
    },
  };
}
