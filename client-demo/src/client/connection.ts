/**
 * The connection: one Socket.IO socket to the server, its state as the page
 * sees it, typed requests (an acked event, its ack turned into a result or a
 * `PinroomError`), and what happens around the socket's life: silent token
 * refresh on `auth:expiring`, a new token before reconnecting after
 * `token_expired`, the session's end on `session_revoked`, and a reconnect
 * after the server closed the socket on purpose. The rooms and the feed put
 * their listeners on the socket through `wire`, and are told of a drop
 * (`dropped`) and of the socket being back (`reconnected`).
 */
import { io, type Socket } from 'socket.io-client';
import type { Ack, ErrorCode } from '../../../shared/errors.ts';
import type { AckedEvent, AckResult, ClientToServerEvents, EventPayload, ServerToClientEvents } from '../../../shared/events.ts';
import { asPinroomError, PinroomError } from './errors.ts';
import type { ConnectionState, Emit } from './events.ts';
import type { Session } from './http.ts';

export type PinroomSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export type Connection = ReturnType<typeof createConnection>;

export function createConnection({
  baseUrl,
  timeoutMs,
  session,
  emit,
  hooks,
}: {
  baseUrl: string;
  timeoutMs: number;
  session: Session;
  emit: Emit;
  hooks: {
    /** Put listeners on a new socket (called once per socket, before it connects). */
    wire: (socket: PinroomSocket) => void;
    /** The socket dropped: nothing may be sent until it is back and the room rejoined. */
    dropped: () => void;
    /** The socket is back after a drop. */
    reconnected: () => void;
    /** The server ended the session (revoked, or no token can be had): forget it. */
    sessionEnded: (reason: ErrorCode) => void;
  };
}) {
  let socket: PinroomSocket | null = null;
  let state: ConnectionState = { status: 'offline' };
  let everConnected = false;

  const setState = (next: ConnectionState) => {
    state = next;
    emit('state', next);
  };

  /**
   * Send an acked event and resolve its ack's `data`; a refusal rejects with
   * its `PinroomError`, no answer within the timeout with a `network` one.
   * Volatile: not buffered while the socket is down (dropped instead of
   * replayed on reconnect).
   */
  function request<E extends AckedEvent>(event: E, payload: EventPayload<E>, options: { volatile?: boolean } = {}): Promise<AckResult<E>> {
    if (!socket) return Promise.reject(new PinroomError({ code: 'network', message: 'not connected' }));
    // Socket.IO's typings cannot follow an event name that is a type parameter (its argument
    // types stay unresolved), so the event goes out through the socket's untyped face, here
    // only; this function's signature, from `ClientToServerEvents`, types every call.
    const untyped: Socket = socket;
    const sender = options.volatile ? untyped.volatile : untyped;
    return sender
      .timeout(timeoutMs)
      .emitWithAck(event, payload)
      .then(
        (ack: Ack<AckResult<E>>) => {
          if (!ack.ok) throw new PinroomError(ack.error);
          return ack.data;
        },
        (err: unknown) => {
          throw asPinroomError(err);
        },
      );
  }

  function connect(): Promise<void> {
    if (socket) return Promise.resolve();
    setState({ status: 'connecting' });
    const s: PinroomSocket = io(baseUrl, {
      transports: ['websocket', 'polling'],
      // A function, so that every reconnect presents the newest access token.
      auth: (cb) => cb({ token: session.accessToken ?? '' }),
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
    });
    socket = s;
    hooks.wire(s);

    s.on('auth:expiring', () => {
      session
        .refresh()
        .then(() => request('auth:refresh', { token: session.accessToken ?? '' }))
        .catch(() => undefined);
    });
    s.on('auth:closed', ({ code }) => {
      if (code === 'session_revoked') hooks.sessionEnded(code);
    });
    s.io.on('reconnect_attempt', (attempt) => setState({ status: 'reconnecting', attempt }));
    s.on('disconnect', (reason) => {
      hooks.dropped();
      if (reason === 'io client disconnect') return;
      setState({ status: 'reconnecting', attempt: 0 });
      // The server closed the socket on purpose (kick, auth): Socket.IO will not retry by itself.
      if (reason === 'io server disconnect' && session.accessToken) setTimeout(() => s.connect(), 500);
    });
    s.on('connect_error', (err: Error & { data?: { code?: string } }) => {
      const code = err.data?.code;
      if (code === 'token_expired') {
        session.refresh().then(
          () => s.connect(),
          () => undefined,
        );
      } else if (code === 'session_revoked' || code === 'unauthorized') {
        session.refresh().then(
          () => s.connect(),
          () => hooks.sessionEnded(code),
        );
      }
    });

    return new Promise<void>((resolve, reject) => {
      s.on('connect', () => {
        const first = !everConnected;
        everConnected = true;
        if (first) {
          setState({ status: 'connected' });
          resolve();
          return;
        }
        hooks.reconnected();
      });
      s.once('connect_error', (err: Error & { data?: unknown }) => {
        if (!everConnected && !err.data) reject(new PinroomError({ code: 'network', message: err.message }));
      });
    });
  }

  return {
    get state() {
      return state;
    },
    /** Whether the socket is up now. */
    get connected() {
      return socket?.connected === true;
    },
    setState,
    request,
    connect,
    /** Close the socket; with `fresh`, the next `connect` counts as a first connection. */
    close(fresh = false): void {
      socket?.close();
      socket = null;
      if (fresh) everConnected = false;
    },
  };
}
