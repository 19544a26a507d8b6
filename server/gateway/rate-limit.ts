/**
 * A per-socket limit of events per second, as a `Guard` of the event router.
 * Counted in memory: a socket lives on one node for its whole life, so there
 * is nothing to share. Past the limit an event is refused with `rate_limited`
 * (with `retryAfterMs`); acked events get it in their ack, volatile ones as
 * `server:error`.
 */
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError, ErrorCode } from '../errors.ts';
import type { Admit, Guard } from './ack.ts';
import type { PinroomSocket } from './create-io.ts';

export interface SocketRateLimitOptions {
  /** Events one socket may send per second, all events together. */
  eventsPerSecond: number;
}

export function createSocketRateLimit({ eventsPerSecond }: SocketRateLimitOptions): Guard {
  const limiter = new RateLimiterMemory({ points: eventsPerSecond, duration: 1 });
  return async (socket) => {
    try {
      await limiter.consume(socket.id, 1);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      throw new AppError(ErrorCode.RateLimited, `More than ${eventsPerSecond} events per second`, { retryAfterMs: Math.max(1, err.msBeforeNext) });
    }
  };
}

/**
 * The hard limit behind the per-socket rate limit: a socket that sends more
 * than `disconnectEventsPerSecond` events in one second (any event name,
 * handled or not, acked or not) is flooding, not bursting. It gets one
 * `server:error` with `rate_limited` and its connection is closed; the
 * events past the limit are dropped unread. The event router's `admit`, so
 * it sees every inbound event before any handler. A fixed one-second window
 * per socket, kept in a WeakMap from the socket's first event on (an idle
 * socket holds nothing; nothing outlives the socket).
 */
export function createFloodLimit({ disconnectEventsPerSecond }: { disconnectEventsPerSecond: number }): Admit {
  const windows = new WeakMap<PinroomSocket, { start: number; count: number; closed: boolean }>();
  return (socket) => {
    const now = Date.now();
    let w = windows.get(socket);
    if (!w) {
      w = { start: now, count: 0, closed: false };
      windows.set(socket, w);
    }
    if (w.closed) return false;
    if (now - w.start >= 1000) {
      w.start = now;
      w.count = 0;
    }
    if (++w.count <= disconnectEventsPerSecond) return true;
    w.closed = true;
    socket.emit('server:error', {
      event: '*',
      error: { code: ErrorCode.RateLimited, message: `More than ${disconnectEventsPerSecond} events in one second: disconnected`, retryable: true, retryAfterMs: 1000 },
    });
    socket.disconnect(true);
    return false;
  };
}
