/**
 * The room jobs every node runs on a timer: the presence heartbeat (with the
 * dead-node purge, PIN renewal and broadcast pacing) every
 * `PRESENCE_HEARTBEAT_MS`, and the host grace sweeper every
 * `ROOM_SWEEP_INTERVAL_MS`. One turn of each at a time (server/periodic.ts);
 * a failed turn is logged and the next interval tries again.
 */
import type { Logger } from 'pino';
import type { RoomsConfig } from '../config.ts';
import { createPeriodic } from '../periodic.ts';
import type { RoomService } from './room-service.ts';

export function createNodeTimers({
  config,
  rooms,
  logger,
}: {
  config: Pick<RoomsConfig, 'presenceHeartbeatMs' | 'sweepIntervalMs'>;
  rooms: Pick<RoomService, 'heartbeatOnce' | 'sweepOnce'>;
  logger: Logger;
}) {
  const every = (name: string, intervalMs: number, once: () => Promise<void>) =>
    createPeriodic({
      interval: () => intervalMs,
      run: () => once().catch((err: unknown) => logger.warn({ err }, `${name} failed; retrying next interval`)),
    });
  const timers = [every('presence heartbeat', config.presenceHeartbeatMs, rooms.heartbeatOnce), every('host grace sweep', config.sweepIntervalMs, rooms.sweepOnce)];

  return {
    /** The first turns after one interval each. */
    start(): void {
      for (const timer of timers) timer.start();
    },
    /** No further turn; resolves when the turns in progress have finished. */
    stop: (): Promise<void> => Promise.all(timers.map((timer) => timer.stop())).then(() => undefined),
  };
}
