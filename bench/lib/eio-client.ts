/**
 * A lightweight load client: Engine.IO v4 / Socket.IO v5 framing spoken over
 * `ws` directly, so that thousands of sockets in one process cost little more
 * than their frames. It answers heartbeats, connects to the main namespace
 * with an `auth` payload, emits events with acks, and counts incoming event
 * frames by name prefix without decoding them (decoding is opt-in, for the
 * few frames a latency measurement needs).
 *
 * Wire format (text frames only; the benchmark never sends binary):
 *   Engine.IO   `0{json}` open, `2` ping, `3` pong, `4<socket.io packet>` message
 *   Socket.IO   `0{auth}` CONNECT, `0{sid}` CONNECT answer, `4{err}` CONNECT_ERROR,
 *               `2<ackId?>[name, ...args]` EVENT, `3<ackId>[...args]` ACK
 */
import WebSocket from 'ws';

export interface EioSocketOptions {
  /** `auth` of the Socket.IO CONNECT packet (pinroom: `{ token }`). */
  auth?: Record<string, unknown>;
  /** Give up on the connection after this long, ms. @default 30000 */
  timeoutMs?: number;
}

export type FrameListener = (data: Buffer) => void;

/** Frames starting with `42["<name>"` (an event called `name`), as bytes. */
export const eventPrefix = (name: string): Buffer => Buffer.from(`42["${name}"`);

const PING = 0x32; // '2'
const MESSAGE = 0x34; // '4'
const SIO_EVENT = 0x32; // '2'
const SIO_ACK = 0x33; // '3'
const SIO_CONNECT = 0x30; // '0'
const SIO_CONNECT_ERROR = 0x34; // '4'

export class EioSocket {
  readonly ws: WebSocket;
  private nextAck = 1;
  private readonly acks = new Map<number, (args: unknown[]) => void>();
  /** Per prefix: frames counted, and an optional listener that sees the raw frame. */
  private readonly watches: { prefix: Buffer; count: number; listener?: FrameListener }[] = [];
  /** Event frames received (any name). */
  events = 0;
  closed = false;

  private constructor(ws: WebSocket) {
    this.ws = ws;
  }

  /** Open a WebSocket-only Engine.IO session and join the main namespace. Rejects with the CONNECT_ERROR message when refused. */
  static connect(baseUrl: string, options: EioSocketOptions = {}): Promise<EioSocket> {
    const url = `${baseUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
    const socket = new EioSocket(ws);
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.terminate();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error('connect timed out')), options.timeoutMs ?? 30_000);
      ws.on('error', fail);
      ws.on('close', () => {
        socket.closed = true;
        fail(new Error('closed before connecting'));
      });
      ws.on('message', (data: Buffer) => {
        if (!settled) {
          const c0 = data[0];
          if (c0 === 0x30) {
            // Engine.IO open: join the main namespace.
            ws.send(`40${options.auth ? JSON.stringify(options.auth) : ''}`);
            return;
          }
          if (c0 === MESSAGE && data[1] === SIO_CONNECT) {
            settled = true;
            clearTimeout(timer);
            ws.removeListener('error', fail);
            ws.on('error', () => undefined);
            resolve(socket);
            return;
          }
          if (c0 === MESSAGE && data[1] === SIO_CONNECT_ERROR) {
            fail(new Error(`connect_error ${data.subarray(2).toString()}`));
            return;
          }
        }
        socket.onFrame(data);
      });
    });
  }

  private onFrame(data: Buffer): void {
    const c0 = data[0];
    if (c0 === PING) {
      this.ws.send('3');
      return;
    }
    if (c0 !== MESSAGE) return;
    const c1 = data[1];
    if (c1 === SIO_EVENT) {
      this.events++;
      for (const watch of this.watches) {
        if (data.length >= watch.prefix.length && data.compare(watch.prefix, 0, watch.prefix.length, 0, watch.prefix.length) === 0) {
          watch.count++;
          watch.listener?.(data);
        }
      }
      return;
    }
    if (c1 === SIO_ACK) {
      // `43<id>[...]`
      let i = 2;
      let id = 0;
      while (i < data.length && data[i]! >= 0x30 && data[i]! <= 0x39) id = id * 10 + (data[i++]! - 0x30);
      const done = this.acks.get(id);
      if (done) {
        this.acks.delete(id);
        done(JSON.parse(data.subarray(i).toString()) as unknown[]);
      }
    }
  }

  /** Count frames of event `name` (and hand them to `listener`). Returns a reader of the count. */
  watch(name: string, listener?: FrameListener): () => number {
    const watch = { prefix: eventPrefix(name), count: 0, ...(listener ? { listener } : {}) };
    this.watches.push(watch);
    return () => watch.count;
  }

  /** Emit an event without an ack. */
  emit(name: string, ...args: unknown[]): void {
    this.ws.send(`42${JSON.stringify([name, ...args])}`);
  }

  /** Emit an event with an ack; resolves the ack's first argument. */
  request<T = unknown>(name: string, payload: unknown, timeoutMs = 30_000): Promise<T> {
    const id = this.nextAck++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.acks.delete(id);
        reject(new Error(`${name}: no ack within ${timeoutMs} ms`));
      }, timeoutMs);
      this.acks.set(id, (args) => {
        clearTimeout(timer);
        resolve(args[0] as T);
      });
      this.ws.send(`42${id}${JSON.stringify([name, payload])}`);
    });
  }

  /** Emit an event with an ack, pre-encoded by the caller (`["name",payload]`). */
  requestRaw(encoded: string, onAck: (args: unknown[]) => void): void {
    const id = this.nextAck++;
    this.acks.set(id, onAck);
    this.ws.send(`42${id}${encoded}`);
  }

  close(): void {
    this.closed = true;
    this.ws.terminate();
  }
}

/** Open `count` sockets, at most `concurrency` handshakes at a time. `authFor(i)` gives each its auth. */
export async function connectMany(
  baseUrl: string,
  count: number,
  { concurrency = 200, authFor, timeoutMs }: { concurrency?: number; authFor?: (i: number) => Record<string, unknown> | undefined; timeoutMs?: number } = {},
): Promise<EioSocket[]> {
  const sockets: EioSocket[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        const auth = authFor?.(i);
        sockets[i] = await EioSocket.connect(baseUrl, { ...(auth ? { auth } : {}), ...(timeoutMs ? { timeoutMs } : {}) });
      }
    }),
  );
  return sockets;
}
