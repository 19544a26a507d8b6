/**
 * Every use of a private field of Socket.IO, Engine.IO or ws, in one place.
 * None of these has a public equivalent; each says why pinroom needs it.
 * They depend on the installed versions (socket.io 4, ws 8): after an
 * upgrade, the tests that cover them are tests/e2e/ (feed delivery, memory
 * per socket) and the shutdown tests.
 */
import type { PinroomServer, PinroomSocket } from './create-io.ts';

interface PrivateServer {
  /** Every namespace created, by name (`Server._nsps`). */
  _nsps: Map<string, { adapter: { close(): Promise<void> | void } }>;
}

/**
 * Close the adapter of every namespace: the Redis adapter's subscriptions and
 * timers. `io.close()` would also close the HTTP server, which shutdown closes
 * itself, earlier and in its own order; there is no public list of namespaces.
 */
export async function closeAdapters(io: PinroomServer): Promise<void> {
  const namespaces = (io as unknown as PrivateServer)._nsps;
  await Promise.allSettled([...namespaces.values()].map((nsp) => nsp.adapter.close()));
}

/** A packet as `socket.io-parser` describes it, and its encoded form. */
export interface PreEncoded {
  packet: { type: number; nsp: string; data: unknown[] };
  packets: string[];
  opts: { preEncoded: true; wsPreEncodedFrame?: Buffer[] };
}

interface PrivateSocket {
  notifyOutgoingListeners?(packet: PreEncoded['packet']): void;
}
interface PrivateClient {
  _packet(packets: unknown, opts: PreEncoded['opts']): void;
}

/**
 * Send an already encoded packet on one socket, the way the adapter's
 * broadcast does (`socket.emit` would encode it again for every socket): the
 * socket's `onAnyOutgoing` listeners (metrics) see the event, then its client
 * writes the packet to the Engine.IO connection (`Client._packet`), which
 * sends a pre-built frame as it is on a WebSocket.
 */
export function writePreEncoded(socket: PinroomSocket, encoded: PreEncoded): void {
  (socket as unknown as PrivateSocket).notifyOutgoingListeners?.(encoded.packet);
  (socket.client as unknown as PrivateClient)._packet(encoded.packets, encoded.opts);
}

/** The receiver state of `ws` between two frames (`GET_INFO` in ws/lib/receiver.js). */
const WS_BETWEEN_FRAMES = 0;

/**
 * `ws` keeps the masking key of the last frame it read as a 4-byte view into
 * the chunk that frame arrived in, so the chunk (for the Socket.IO CONNECT
 * packet: about 0.5 KB, the access token included) stays in memory until the
 * client's next frame, its first heartbeat answer. Between frames the key is
 * dead (the next frame reads its own): drop it; in the middle of a frame, keep
 * a copy of its 4 bytes instead of the view.
 */
export function releaseHandshakeFrame(socket: PinroomSocket): void {
  const transport = socket.conn.transport as { name?: string; socket?: { _receiver?: { _state?: unknown; _mask?: unknown } } };
  const receiver = transport.name === 'websocket' ? transport.socket?._receiver : undefined;
  if (!receiver || !(receiver._mask instanceof Uint8Array)) return;
  receiver._mask = receiver._state === WS_BETWEEN_FRAMES ? undefined : Buffer.from(receiver._mask);
}
