/**
 * Revocation that cannot be missed. Logout and refresh-token reuse close a
 * session's sockets on every node through the Redis adapter, but a node
 * whose adapter subscription is down at that moment misses the broadcast,
 * and the socket would live on until its access token expires. So every
 * `SESSION_RECHECK_MS` (± 10 % jitter, so nodes do not read at once) each
 * node reads the state of every session it holds sockets of, in batched
 * Redis reads (the session check's `states`: one `session-states` script
 * call per 256 sessions), and closes the sockets of
 * sessions that are revoked or gone with `auth:closed { code:
 * 'session_revoked' }`: a missed broadcast closes within one interval.
 *
 * The sessions held here are the node's `session:{sid}` Socket.IO groups (no
 * bookkeeping of its own). Closing is local (`io.local`): each node closes
 * only its own sockets, without publishing anything. A failed read skips that
 * turn; nothing is closed on a Redis error.
 *
 * Cost: per interval, one script call per 256 sessions held on this node.
 */
import type { Logger } from 'pino';
import { DisconnectReason } from '../../shared/events.ts';
import type { PinroomServer } from '../gateway/create-io.ts';
import { socketRooms } from '../gateway/socket-rooms.ts';
import { createPeriodic } from '../periodic.ts';
import type { SessionState } from './session-check.ts';

/** Sessions read per turn of the loop (bounds what one pass holds in flight). */
const BATCH = 1000;

export type SessionRecheck = ReturnType<typeof createSessionRecheck>;

export function createSessionRecheck({
  io,
  sessionStates,
  intervalMs,
  logger,
  random = Math.random,
}: {
  io: PinroomServer;
  /** The states of these sessions, in order (one round trip). */
  sessionStates: (sessionIds: readonly string[]) => Promise<SessionState[]>;
  intervalMs: number;
  logger: Logger;
  random?: () => number;
}) {
  const log = logger.child({ component: 'session-recheck' });
  const prefix = socketRooms.session('');

  /** The sessions this node holds sockets of. */
  function localSessions(): string[] {
    const ids: string[] = [];
    for (const name of io.of('/').adapter.rooms.keys()) {
      if (name.startsWith(prefix)) ids.push(name.slice(prefix.length));
    }
    return ids;
  }

  function close(sessionId: string): void {
    const group = io.local.in(socketRooms.session(sessionId));
    group.emit('auth:closed', { code: DisconnectReason.SessionRevoked });
    group.disconnectSockets(false);
  }

  /** One pass: read every local session's state and close the revoked ones. Resolves the number of sessions closed. */
  async function recheck(): Promise<number> {
    const sessions = localSessions();
    let closed = 0;
    for (let i = 0; i < sessions.length; i += BATCH) {
      const batch = sessions.slice(i, i + BATCH);
      let states: SessionState[];
      try {
        states = await sessionStates(batch);
      } catch (err) {
        log.warn({ err }, 'session re-check skipped: Redis did not answer');
        return closed;
      }
      states.forEach((state, j) => {
        if (state === 'active') return;
        log.info({ sessionId: batch[j], state }, 'closing the sockets of a revoked session found by the re-check');
        close(batch[j]!);
        closed++;
      });
    }
    return closed;
  }

  const periodic = createPeriodic({ interval: () => Math.round(intervalMs * (0.9 + random() * 0.2)), run: recheck });

  return {
    /** Start the periodic re-check. */
    start: periodic.start,
    /** Stop it, and wait for a pass in progress. */
    stop: periodic.stop,
    /** Run one pass now (tests, and a node that wants to check at once). */
    recheck,
  };
}
