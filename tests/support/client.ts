/** Typed socket.io-client helpers for end-to-end tests. */
import type { Agent } from 'node:http';
import { io, type Socket } from 'socket.io-client';
import type { Ack } from '../../shared/errors.ts';
import type { AckedEvent, AckResult, ClientToServerEvents, EventPayload, ServerToClientEvents } from '../../shared/events.ts';

export type TestSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface ConnectOptions {
  token?: string;
  transports?: ('websocket' | 'polling')[];
  reconnection?: boolean;
  extraHeaders?: Record<string, string>;
  /** Engine.IO handshake timeout, ms. @default 5000 */
  timeoutMs?: number;
  /** HTTP agent for polling requests and the WebSocket (e.g. one with a `localAddress`, to connect from another loopback address). */
  agent?: Agent;
}

/** Longest a test waits for a socket to connect, ms (generous: the machine is shared). */
const CONNECT_DEADLINE_MS = 20_000;

/** Open a socket and wait for `connect` (rejects with the `connect_error`, or after `CONNECT_DEADLINE_MS`). */
export async function connect(url: string, options: ConnectOptions = {}): Promise<TestSocket> {
  const socket: TestSocket = io(url, {
    transports: options.transports ?? ['websocket'],
    reconnection: options.reconnection ?? false,
    auth: options.token === undefined ? {} : { token: options.token },
    forceNew: true,
    timeout: options.timeoutMs ?? 5000,
    ...(options.extraHeaders ? { extraHeaders: options.extraHeaders } : {}),
    ...(options.agent ? { agent: options.agent as unknown as string } : {}),
  });
  // The client's own `timeout` covers only the Engine.IO handshake; the Socket.IO
  // CONNECT that follows (the server's auth middleware) has no deadline of its own.
  const deadlineMs = Math.max(CONNECT_DEADLINE_MS, (options.timeoutMs ?? 0) + 5000);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no connect within ${deadlineMs} ms (engine ${socket.io.engine?.readyState ?? 'not opened'}, transport ${socket.io.engine?.transport?.name ?? 'none'})`));
    }, deadlineMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
  });
  return socket;
}

/** The `connect_error` a handshake fails with (throws if it connects). */
export async function connectError(url: string, options: ConnectOptions = {}): Promise<Error & { data?: { code?: string } }> {
  try {
    const socket = await connect(url, options);
    socket.close();
  } catch (err) {
    return err as Error & { data?: { code?: string } };
  }
  throw new Error('expected the connection to be refused');
}

/**
 * How long a test waits for an ack or an event by default: generous, because
 * on a loaded 2-core machine a test's servers and its clients share the cores.
 * Only a failing wait ever takes this long.
 */
export const EVENT_DEADLINE_MS = 15_000;

/** Emit an acked event and resolve its ack. */
export function request<E extends AckedEvent>(socket: TestSocket, event: E, payload: EventPayload<E>, timeoutMs = EVENT_DEADLINE_MS): Promise<Ack<AckResult<E>>> {
  return (socket.timeout(timeoutMs) as unknown as { emitWithAck(e: string, p: unknown): Promise<Ack<AckResult<E>>> }).emitWithAck(event, payload);
}

/** Wait for the next `event` on `socket`, optionally one that matches `filter`. */
export function nextEvent<E extends keyof ServerToClientEvents>(
  socket: TestSocket,
  event: E,
  filter: (payload: Parameters<ServerToClientEvents[E]>[0]) => boolean = () => true,
  timeoutMs = EVENT_DEADLINE_MS,
): Promise<Parameters<ServerToClientEvents[E]>[0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, listener as never);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (payload: Parameters<ServerToClientEvents[E]>[0]) => {
      if (!filter(payload)) return;
      clearTimeout(timer);
      socket.off(event, listener as never);
      resolve(payload);
    };
    socket.on(event, listener as never);
  });
}

type Signal = Parameters<ServerToClientEvents['room:signal']>[0];

/**
 * Send `room:signal` from `sender` every 250 ms until each of `receivers` has
 * one of that `type`, and resolve the first each got. Signals are volatile,
 * dropped under back-pressure (docs/protocol.md): on a loaded machine one can
 * be lost, and a test of where signals go must not count on a single one.
 */
export async function signalUntilHeard(sender: TestSocket, receivers: TestSocket[], signal: Omit<Signal, 'from'>, timeoutMs = EVENT_DEADLINE_MS): Promise<Signal[]> {
  let done = false;
  const heard = Promise.all(receivers.map((r) => nextEvent(r, 'room:signal', (p) => p.type === signal.type, timeoutMs))).finally(() => (done = true));
  while (!done) {
    sender.emit('room:signal', signal);
    await Promise.race([heard.catch(() => undefined), new Promise((r) => setTimeout(r, 250))]);
  }
  return heard;
}

/** Resolve when `socket` disconnects, with the reason. */
export function disconnected(socket: TestSocket, timeoutMs = EVENT_DEADLINE_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no disconnect within ${timeoutMs} ms`)), timeoutMs);
    socket.once('disconnect', (reason) => {
      clearTimeout(timer);
      resolve(reason);
    });
  });
}

/**
 * Resolve once everything the server had sent `socket` before this call has
 * arrived: an acked round trip (`feed:unsubscribe` of a room the socket does
 * not follow, a no-op any signed-in socket may send), whose answer travels the
 * same connection after them. The marker that ends a negative check ("no
 * echo", "no entry after the kick") instead of a time window.
 */
export async function flushed(socket: TestSocket, timeoutMs = 15_000): Promise<void> {
  const ack = await request(socket, 'feed:unsubscribe', { roomId: crypto.randomUUID() }, timeoutMs);
  if (!ack.ok) throw new Error(`round trip refused: ${ack.error.code}`);
}
