/**
 * The edge between Socket.IO events and services. Handlers are registered
 * once, for every socket (`handle`, `volatile`, `onDisconnect`); `attach`
 * gives a socket one shared listener for its inbound events and one for its
 * disconnect, so an idle connection holds no closure per event (memory per
 * socket, and nothing to build per handshake). The disconnect hooks run on
 * Socket.IO's `disconnecting`, while the socket is still in its groups (the
 * rooms feature reads them; nothing needs to run after they are left).
 *
 * For each inbound event the router runs `admit` (the flood limit, which
 * sees every event, known or not), validates the payload against its shared
 * schema, runs the guards (token expiry, rate limits), calls the handler and
 * answers the ack with `{ ok, data }` or a typed `{ ok: false, error }`. It is
 * the only place socket errors become payloads. An unknown event with an ack
 * is answered `bad_request`; without one it is dropped.
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

/** Sees every inbound event first; false drops it (the admitter deals with the socket). */
export type Admit = (socket: PinroomSocket) => boolean;

type AckedEvent = {
  [E in keyof ClientToServerEvents]: Parameters<ClientToServerEvents[E]> extends [unknown, (r: never) => void] ? E : never;
}[keyof ClientToServerEvents];
type AckData<E extends AckedEvent> = Parameters<ClientToServerEvents[E]>[1] extends (r: Ack<infer R>) => void ? R : never;

export type EventRouter = ReturnType<typeof createEventRouter>;

/** Observers of the router (metrics, the system log): every event received, every ack sent with its code (`ok` or the error code), every `internal` answer. */
export interface RouterHooks {
  onEvent?(event: string): void;
  onAck?(event: string, code: string): void;
  /** An event (acked or volatile) failed with `internal`: an unexpected fault, logged with its cause. */
  onInternal?(event: string): void;
}

type AckFn = (response: Ack<unknown>) => void;

interface Route {
  /** Acked (`handle`) or fire-and-forget (`volatile`). */
  acked: boolean;
  schema: z.ZodType;
  run: (socket: PinroomSocket, payload: unknown) => unknown;
}

export function createEventRouter({ logger, guards = [], hooks = {}, admit }: { logger: Logger; guards?: Guard[]; hooks?: RouterHooks; admit?: Admit }) {
  const { onEvent, onAck, onInternal } = hooks;
  const routes = new Map<string, Route>();
  const disconnectHooks: ((socket: PinroomSocket, reason: string) => void)[] = [];

  const runGuards = async (socket: PinroomSocket, event: string) => {
    for (const guard of guards) await guard(socket, event);
  };
  const notify = (socket: PinroomSocket, event: string, error: ErrorPayload) => {
    socket.emit('server:error', { event, error });
  };
  const errorOf = (socket: PinroomSocket, event: string, err: unknown) => {
    const payload = toErrorPayload(err, logger, { event, socketId: socket.id, userId: socket.data.user?.id });
    if (payload.code === ErrorCode.Internal) onInternal?.(event);
    return payload;
  };

  async function acked(socket: PinroomSocket, event: string, route: Route, args: unknown[]): Promise<void> {
    const last = args[args.length - 1];
    const ack = typeof last === 'function' ? (args.pop() as AckFn) : undefined;
    if (!ack) {
      notify(socket, event, { code: ErrorCode.BadRequest, message: `${event} needs an acknowledgement callback`, retryable: false });
      return;
    }
    try {
      if (args.length !== 1) throw new AppError(ErrorCode.BadRequest, `${event} takes exactly one payload argument`);
      await runGuards(socket, event);
      const data = await route.run(socket, parse(route.schema, args[0], `${event} payload`));
      onAck?.(event, 'ok');
      ack({ ok: true, data });
    } catch (err) {
      const error = errorOf(socket, event, err);
      onAck?.(event, error.code);
      ack({ ok: false, error });
    }
  }

  async function volatile(socket: PinroomSocket, event: string, route: Route, args: unknown[]): Promise<void> {
    try {
      if (typeof args[args.length - 1] === 'function') args.pop();
      if (args.length !== 1) throw new AppError(ErrorCode.BadRequest, `${event} takes exactly one payload argument`);
      await runGuards(socket, event);
      await route.run(socket, parse(route.schema, args[0], `${event} payload`));
    } catch (err) {
      notify(socket, event, errorOf(socket, event, err));
    }
  }

  /** The one inbound listener of every socket (`socket.onAny`: `this` is the socket). */
  function onInbound(this: PinroomSocket, event: unknown, ...args: unknown[]): void {
    if (admit && !admit(this)) return;
    const route = typeof event === 'string' ? routes.get(event) : undefined;
    if (!route) {
      const last = args[args.length - 1];
      if (typeof last === 'function') {
        (last as AckFn)({ ok: false, error: { code: ErrorCode.BadRequest, message: 'Unknown event', retryable: false } });
      }
      return;
    }
    onEvent?.(event as string);
    void (route.acked ? acked : volatile)(this, event as string, route, args);
  }

  function onDisconnecting(this: PinroomSocket, reason: string): void {
    for (const hook of disconnectHooks) {
      try {
        hook(this, reason);
      } catch (err) {
        logger.warn({ err, socketId: this.id }, 'disconnect hook failed');
      }
    }
  }

  /**
   * Socket.IO re-emits inbound events on the socket itself, and an inbound
   * event named "error" on an EventEmitter without an error listener throws
   * (out of a `process.nextTick`: the process would go down). Inbound events
   * are handled by `onInbound`; this only keeps that emit harmless.
   */
  function ignoreInboundError(): void {}

  function register(event: string, route: Route): void {
    if (routes.has(event)) throw new Error(`${event} already has a handler`);
    routes.set(event, route);
  }

  return {
    /** Add a guard that runs before every handler, in the order added. */
    addGuard(guard: Guard) {
      guards.push(guard);
    },

    /** Register an acked event for every socket: `(payload, ack)`. */
    handle<E extends AckedEvent, S extends z.ZodType>(
      event: E,
      schema: S,
      run: (socket: PinroomSocket, payload: z.output<S>) => Promise<AckData<E>> | AckData<E>,
    ): void {
      register(event, { acked: true, schema, run: run as Route['run'] });
    },

    /** Register a fire-and-forget event (no ack) for every socket; failures are reported as `server:error`. */
    volatile<S extends z.ZodType>(event: keyof ClientToServerEvents, schema: S, run: (socket: PinroomSocket, payload: z.output<S>) => Promise<void> | void): void {
      register(event, { acked: false, schema, run: run as Route['run'] });
    },

    /**
     * Run `hook` when any socket disconnects, in the order registered, while
     * it is still in its groups (`socket.rooms`). It must not throw.
     */
    onDisconnect(hook: (socket: PinroomSocket, reason: string) => void): void {
      disconnectHooks.push(hook);
    },

    /** Route a connected socket's events: call once per socket, in the connection listener. */
    attach(socket: PinroomSocket): void {
      socket.onAny(onInbound as never);
      socket.on('disconnecting', onDisconnecting as never);
      socket.on('error' as never, ignoreInboundError as never);
    },
  };
}
