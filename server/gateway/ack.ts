/**
 * The edge between Socket.IO events and services. `handle` validates the
 * payload against its shared schema, runs the guards (token expiry, rate
 * limits), calls the service and answers the ack with `{ ok, data }` or a
 * typed `{ ok: false, error }`. It is the only place socket errors become payloads.
 */
import type { z } from 'zod';
import type { Logger } from 'pino';
import { ErrorCode, type Ack, type ErrorPayload } from '../../shared/errors.ts';
import type { ClientToServerEvents } from '../../shared/events.ts';
import { AppError, toErrorPayload } from '../errors.ts';
import { parse } from '../validation.ts';
import type { PinroomSocket } from './create-io.ts';

/** Runs before every handler; throws an `AppError` to refuse the event. */
export type Guard = (socket: PinroomSocket, event: string) => void | Promise<void>;

type AckedEvent = {
  [E in keyof ClientToServerEvents]: Parameters<ClientToServerEvents[E]> extends [unknown, (r: never) => void] ? E : never;
}[keyof ClientToServerEvents];
type AckData<E extends AckedEvent> = Parameters<ClientToServerEvents[E]>[1] extends (r: Ack<infer R>) => void ? R : never;

export type EventRouter = ReturnType<typeof createEventRouter>;

/** Observers of the router (metrics): every event received, every ack sent with its code (`ok` or the error code). */
export interface RouterHooks {
  onEvent?(event: string): void;
  onAck?(event: string, code: string): void;
}

export function createEventRouter({ logger, guards = [], hooks = {} }: { logger: Logger; guards?: Guard[]; hooks?: RouterHooks }) {
  const { onEvent, onAck } = hooks;
  const runGuards = async (socket: PinroomSocket, event: string) => {
    for (const guard of guards) await guard(socket, event);
  };
  const notify = (socket: PinroomSocket, event: string, error: ErrorPayload) => {
    socket.emit('server:error', { event, error });
  };

  return {
    /** Add a guard that runs before every handler, in the order added. */
    addGuard(guard: Guard) {
      guards.push(guard);
    },

    /** Register an acked event: `(payload, ack)`. */
    handle<E extends AckedEvent, S extends z.ZodType>(
      socket: PinroomSocket,
      event: E,
      schema: S,
      run: (payload: z.output<S>) => Promise<AckData<E>> | AckData<E>,
    ): void {
      socket.on(event as never, (async (...args: unknown[]) => {
        onEvent?.(event);
        const last = args[args.length - 1];
        const ack = typeof last === 'function' ? (args.pop() as (response: Ack<AckData<E>>) => void) : undefined;
        if (!ack) {
          notify(socket, event, { code: ErrorCode.BadRequest, message: `${event} needs an acknowledgement callback`, retryable: false });
          return;
        }
        try {
          if (args.length !== 1) throw new AppError(ErrorCode.BadRequest, `${event} takes exactly one payload argument`);
          await runGuards(socket, event);
          const payload = parse(schema, args[0], `${event} payload`);
          const data = await run(payload);
          onAck?.(event, 'ok');
          ack({ ok: true, data });
        } catch (err) {
          const error = toErrorPayload(err, logger, { event, socketId: socket.id, userId: socket.data.user?.id });
          onAck?.(event, error.code);
          ack({ ok: false, error });
        }
      }) as never);
    },

    /** Register a fire-and-forget event (no ack); failures are reported as `server:error`. */
    volatile<S extends z.ZodType>(socket: PinroomSocket, event: keyof ClientToServerEvents, schema: S, run: (payload: z.output<S>) => Promise<void> | void): void {
      socket.on(event as never, (async (...args: unknown[]) => {
        onEvent?.(event);
        try {
          if (typeof args[args.length - 1] === 'function') args.pop();
          if (args.length !== 1) throw new AppError(ErrorCode.BadRequest, `${event} takes exactly one payload argument`);
          await runGuards(socket, event);
          await run(parse(schema, args[0], `${event} payload`));
        } catch (err) {
          notify(socket, event, toErrorPayload(err, logger, { event, socketId: socket.id, userId: socket.data.user?.id }));
        }
      }) as never);
    },
  };
}
