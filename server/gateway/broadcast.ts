/**
 * Pre-encoded sends: one event with one payload going to many sockets (a feed
 * entry delivered to every subscriber of a room) is encoded once, and for
 * WebSocket transports framed once, instead of once per socket. This is what
 * Socket.IO's own adapter does for `io.to(room).emit`; pinroom delivers feed
 * entries per subscription (each holds its own stream cursor), so it needs
 * the same thing per entry rather than per room.
 *
 * `createPreEncoder(event)` returns `send(socket, payload)`; payload objects
 * must not be mutated after their first send (the encoding is cached per
 * object, weakly: it goes when the payload does).
 */
import * as ws from 'ws';
import type { PinroomSocket } from './create-io.ts';

/** socket.io-parser `PacketType.EVENT`. */
const EVENT = 2;

interface Encoded {
  packet: { type: number; nsp: string; data: unknown[] };
  packets: unknown[];
  opts: { preEncoded: true; wsPreEncodedFrame?: Buffer[] };
}

type FrameBuilder = (data: Buffer, options: { readOnly: boolean; mask: boolean; rsv1: boolean; opcode: number; fin: boolean }) => Buffer[];
// `Sender.frame` is exported by ws (and used by Socket.IO's adapter) but not typed by @types/ws.
const frame = (ws as unknown as { Sender: { frame: FrameBuilder } }).Sender.frame;

interface PacketWriter {
  _packet(packets: unknown, opts: Encoded['opts']): void;
}
interface OutgoingListeners {
  notifyOutgoingListeners?(packet: Encoded['packet']): void;
}

export function createPreEncoder(event: string) {
  const cache = new WeakMap<object, Encoded>();

  function encode(socket: PinroomSocket, payload: object): Encoded {
    const packet = { type: EVENT, nsp: socket.nsp.name, data: [event, payload] };
    const packets = socket.nsp.server.encoder.encode(packet) as unknown[];
    const opts: Encoded['opts'] = { preEncoded: true };
    if (packets.length === 1 && typeof packets[0] === 'string') {
      // "4" is the Engine.IO message packet type; the frame is an unmasked, final text frame.
      opts.wsPreEncodedFrame = frame(Buffer.from(`4${packets[0]}`), { readOnly: false, mask: false, rsv1: false, opcode: 1, fin: true });
    }
    return { packet, packets, opts };
  }

  /** `socket.emit(event, payload)`, with the encoding shared by every socket that gets the same payload object. */
  return function send(socket: PinroomSocket, payload: object): void {
    let encoded = cache.get(payload);
    if (!encoded) {
      encoded = encode(socket, payload);
      cache.set(payload, encoded);
    }
    // Same path as the adapter's broadcast: `onAnyOutgoing` listeners (metrics) see
    // the event, then the client writes the packets to its Engine.IO connection,
    // which sends the pre-built frame on a WebSocket.
    (socket as unknown as OutgoingListeners).notifyOutgoingListeners?.(encoded.packet);
    (socket.client as unknown as PacketWriter)._packet(encoded.packets, encoded.opts);
  };
}
