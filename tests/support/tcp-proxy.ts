/**
 * A TCP proxy between a client and a real server (Redis, PostgreSQL) that a
 * test can cut (reset every connection, refuse new ones) or stall (accept and
 * hold bytes without forwarding), to inject network faults for real.
 *
 * A fault applies to every connection, including the ones opened while it
 * lasts: a client that reconnects during a stall is held like the others, and
 * one that connects during a cut is reset at once.
 */
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Point a URL at the proxy: same scheme, credentials and path, host and port replaced. */
  url(target: string): string;
  /** Destroy every open connection and refuse new ones until `restore`. */
  cut(): void;
  /** Keep connections (open and new) open but forward nothing until `restore` (held bytes then flow). */
  stall(): void;
  /** Back to forwarding. */
  restore(): void;
  /** Local ports of the proxy's open connections to the target (what the target sees as client ports). */
  upstreamPorts(): number[];
  /** Connections accepted so far, and how many of them were accepted during a stall or a cut. */
  readonly accepted: { total: number; duringStall: number; duringCut: number };
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  flowing: boolean;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  let mode: 'open' | 'cut' | 'stall' = 'open';
  const pairs = new Set<Pair>();
  const accepted = { total: 0, duringStall: 0, duringCut: 0 };

  // Forwarding is `pipe()` while open; a stall unpipes and pauses both sides, so
  // bytes stay buffered here (pipe() would resume a merely paused socket).
  const flow = (pair: Pair) => {
    if (pair.flowing) return;
    pair.flowing = true;
    pair.client.pipe(pair.upstream);
    pair.upstream.pipe(pair.client);
  };
  const hold = (pair: Pair) => {
    pair.flowing = false;
    pair.client.unpipe(pair.upstream);
    pair.upstream.unpipe(pair.client);
    pair.client.pause();
    pair.upstream.pause();
  };
  const destroy = (pair: Pair) => {
    pair.client.destroy();
    pair.upstream.destroy();
    pairs.delete(pair);
  };

  const server = createServer((client) => {
    accepted.total++;
    if (mode === 'cut') {
      accepted.duringCut++;
      client.destroy();
      return;
    }
    if (mode === 'stall') accepted.duringStall++;
    client.pause();
    const upstream = createConnection({ host: targetHost, port: targetPort });
    upstream.pause();
    const pair: Pair = { client, upstream, flowing: false };
    pairs.add(pair);
    const end = () => destroy(pair);
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    if (mode === 'open') flow(pair);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;

  return {
    port,
    accepted,
    url(target) {
      const u = new URL(target);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    cut() {
      mode = 'cut';
      for (const pair of [...pairs]) destroy(pair);
    },
    stall() {
      mode = 'stall';
      for (const pair of pairs) hold(pair);
    },
    restore() {
      mode = 'open';
      for (const pair of pairs) flow(pair);
    },
    upstreamPorts() {
      return [...pairs].map((p) => p.upstream.localPort).filter((p): p is number => typeof p === 'number');
    },
    async close() {
      for (const pair of [...pairs]) destroy(pair);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
