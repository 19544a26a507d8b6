/**
 * A raw Engine.IO v4 WebSocket (the `ws` package, no socket.io-client) for
 * hostile-input tests: it sends exactly the frames a test writes, including
 * malformed ones, and records what comes back.
 *
 *   const raw = await openRawSocket(server.url, { token });   // Engine.IO open + Socket.IO CONNECT
 *   raw.send('42["room:join",{"pin":"1"}]');                 // any text or binary frame
 *   await raw.closed;                                       // { code, reason }
 */
import { Socket as NetSocket, connect as netConnect } from 'node:net';
import WebSocket from 'ws';
import { EVENT_DEADLINE_MS } from './client.ts';

export interface RawSocket {
  ws: WebSocket;
  /** Frames received so far (text as strings, binary as Buffers), heartbeats excluded. */
  frames: (string | Buffer)[];
  /** Engine.IO session id. */
  sid: string;
  send(data: string | Buffer): void;
  /** Resolve the next frame (already received or future) that matches `filter`; rejects if the connection closes first. */
  next(filter?: (frame: string | Buffer) => boolean, timeoutMs?: number): Promise<string | Buffer>;
  /** Resolves when the connection closes. */
  closed: Promise<{ code: number; reason: string }>;
  isOpen(): boolean;
  close(): void;
}

export interface RawOptions {
  /** Access token: send the Socket.IO CONNECT with `{ token }` and wait for its answer. Omit to stay at the Engine.IO level. */
  token?: string;
  origin?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export function engineUrl(url: string, transport: 'websocket' | 'polling' = 'websocket'): string {
  const u = new URL(url);
  if (transport === 'websocket') u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = '/socket.io/';
  u.search = `?EIO=4&transport=${transport}`;
  return u.toString();
}

/**
 * Open a WebSocket to the Engine.IO endpoint. Rejects with the HTTP status
 * (`Error('unexpected response 403')`, `.status`) when the upgrade is refused.
 */
export async function openRawSocket(url: string, options: RawOptions = {}): Promise<RawSocket> {
  const timeoutMs = options.timeoutMs ?? EVENT_DEADLINE_MS;
  const headers = { ...(options.headers ?? {}) };
  const ws = new WebSocket(engineUrl(url), { headers, ...(options.origin ? { origin: options.origin } : {}), maxPayload: 100 * 1024 * 1024 });
  const frames: (string | Buffer)[] = [];
  const waiters: { filter: (f: string | Buffer) => boolean; resolve: (f: string | Buffer) => void; reject: (err: Error) => void }[] = [];
  let open = false;
  let hasClosed = false;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      open = false;
      hasClosed = true;
      for (const w of waiters.splice(0)) w.reject(new Error(`connection closed (${code}) before a matching frame`));
      resolve({ code, reason: reason.toString() });
    });
  });
  ws.on('error', () => undefined); // surfaced through `closed` or the opening promise
  ws.on('message', (data, isBinary) => {
    const frame = isBinary ? Buffer.from(data as Buffer) : data.toString();
    if (frame === '2') {
      ws.send('3'); // Engine.IO ping → pong
      return;
    }
    frames.push(frame);
    for (const w of [...waiters]) {
      if (w.filter(frame)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(frame);
      }
    }
  });

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no WebSocket open within ${timeoutMs} ms`)), timeoutMs);
    ws.once('open', () => {
      clearTimeout(timer);
      open = true;
      resolve();
    });
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      const err = new Error(`unexpected response ${res.statusCode}`) as Error & { status?: number };
      err.status = res.statusCode;
      res.resume();
      reject(err);
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });

  const next = (filter: (frame: string | Buffer) => boolean = () => true, waitMs = timeoutMs) => {
    const seen = frames.find(filter);
    if (seen !== undefined) {
      frames.splice(frames.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    if (hasClosed) return Promise.reject(new Error('connection closed before a matching frame'));
    return new Promise<string | Buffer>((resolve, reject) => {
      const waiter = {
        filter,
        resolve: (f: string | Buffer) => {
          clearTimeout(timer);
          frames.splice(frames.indexOf(f), 1);
          resolve(f);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`no matching frame within ${waitMs} ms; got ${JSON.stringify(frames.map((f) => (typeof f === 'string' ? f.slice(0, 120) : `<binary ${f.length}>`)))}`));
      }, waitMs);
      waiters.push(waiter);
    });
  };

  const opened = (await next((f) => typeof f === 'string' && f.startsWith('0'))) as string;
  const sid = (JSON.parse(opened.slice(1)) as { sid: string }).sid;
  const raw: RawSocket = {
    ws,
    frames,
    sid,
    send: (data) => ws.send(data),
    next,
    closed,
    isOpen: () => open,
    close: () => ws.terminate(),
  };
  if (options.token !== undefined) {
    ws.send(`40${JSON.stringify({ token: options.token })}`);
    const answer = (await next((f) => typeof f === 'string' && (f.startsWith('40') || f.startsWith('44')))) as string;
    if (!answer.startsWith('40')) {
      ws.terminate();
      throw new Error(`Socket.IO CONNECT refused: ${answer}`);
    }
  }
  return raw;
}

/** A plain TCP connection to the server's port, for requests written byte by byte. */
export async function openTcp(url: string): Promise<NetSocket> {
  const u = new URL(url);
  const socket = netConnect({ host: u.hostname, port: Number(u.port) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}
