/**
 * Pre-encoded sends, and how much a socket still has to take.
 *
 * One event with one payload going to many sockets (a feed entry delivered to
 * every subscriber of a room on this node) is encoded once, and for WebSocket
 * transports framed once, instead of once per socket: what Socket.IO's adapter
 * does for `io.to(room).emit`. The payload arrives already as JSON text (the
 * append script wrote it), so nothing is parsed or stringified per entry.
 *
 * `createJsonSender(event)` returns `send(socket, key, json)`: `key` is the
 * object that stands for this payload (the frame is cached per object, weakly:
 * it goes when the key does), `json` its JSON text, which must not change for
 * a given key.
 *
 * `bufferedBytes(socket)` is what was written to a socket and not yet taken by
 * the kernel: Engine.IO's write buffer (packets waiting while the transport is
 * busy, counted as the feed queues them) plus the WebSocket's own buffer.
 * `cutOff(socket)` closes the transport at once, dropping those buffers.
 */
import * as ws from 'ws';
import type { PinroomSocket } from './create-io.ts';
import { writePreEncoded, type PreEncoded } from './internals.ts';

/** socket.io-parser `PacketType.EVENT`. */
const EVENT = 2;

interface Encoded extends PreEncoded {
  bytes: number;
}

type FrameBuilder = (data: Buffer, options: { readOnly: boolean; mask: boolean; rsv1: boolean; opcode: number; fin: boolean }) => Buffer[];
// `Sender.frame` is exported by ws (and used by Socket.IO's adapter) but not typed by @types/ws.
const frame = (ws as unknown as { Sender: { frame: FrameBuilder } }).Sender.frame;

/** The parts of an Engine.IO socket (`socket.conn`) read here. */
interface EngineConn {
  writeBuffer: unknown[];
  readyState: string;
  transport: { name: string; socket?: { bufferedAmount?: number; terminate?(): void } };
  close(discard?: boolean): void;
}

const engineOf = (socket: PinroomSocket) => socket.conn as unknown as EngineConn;

/**
 * Bytes `send` queued in one Engine.IO write buffer, per connection. Engine.IO
 * replaces the buffer array on every flush, so bytes counted for an older
 * array are gone: no reset needed, and an empty buffer costs no lookup.
 */
const queued = new WeakMap<EngineConn, { buffer: unknown[]; bytes: number }>();

export function createJsonSender(event: string) {
  const cache = new WeakMap<object, Encoded>();

  function encode(socket: PinroomSocket, key: object, json: string): Encoded {
    const nsp = socket.nsp.name;
    // What socket.io-parser's encoder writes for an EVENT packet without binary data.
    const text = `${EVENT}${nsp === '/' ? '' : `${nsp},`}["${event}",${json}]`;
    const opts: Encoded['opts'] = { preEncoded: true };
    // "4" is the Engine.IO message packet type; the frame is an unmasked, final text frame.
    const data = Buffer.from(`4${text}`);
    opts.wsPreEncodedFrame = frame(data, { readOnly: false, mask: false, rsv1: false, opcode: 1, fin: true });
    return { packet: { type: EVENT, nsp, data: [event, key] }, packets: [text], opts, bytes: data.length };
  }

  /** `socket.emit(event, <json>)`, with the frame shared by every socket that gets the same key. Returns the frame's size, bytes. */
  return function send(socket: PinroomSocket, key: object, json: string): number {
    let encoded = cache.get(key);
    if (!encoded) {
      encoded = encode(socket, key, json);
      cache.set(key, encoded);
    }
    writePreEncoded(socket, encoded);
    const buffer = engineOf(socket).writeBuffer;
    if (buffer.length > 0) {
      // The transport is busy: the packet waits in Engine.IO's buffer.
      const conn = engineOf(socket);
      let state = queued.get(conn);
      if (!state) queued.set(conn, (state = { buffer, bytes: 0 }));
      else if (state.buffer !== buffer) {
        state.buffer = buffer;
        state.bytes = 0;
      }
      state.bytes += encoded.bytes;
    }
    return encoded.bytes;
  };
}

/** Bytes written to the socket that the client has not taken yet (see the module comment). */
export function bufferedBytes(socket: PinroomSocket): number {
  const conn = engineOf(socket);
  let bytes = 0;
  if (conn.writeBuffer.length > 0) {
    const state = queued.get(conn);
    if (state && state.buffer === conn.writeBuffer) bytes = state.bytes;
  }
  const amount = conn.transport.socket?.bufferedAmount;
  return typeof amount === 'number' ? bytes + amount : bytes;
}

/**
 * Close the socket's transport now, discarding what it still buffers (a close
 * handshake would wait behind it). The client sees a transport close and
 * reconnects by itself.
 */
export function cutOff(socket: PinroomSocket): void {
  const conn = engineOf(socket);
  const raw = conn.transport.socket;
  if (conn.transport.name === 'websocket' && typeof raw?.terminate === 'function') raw.terminate();
  else conn.close(true);
}
