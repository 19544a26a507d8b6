/**
 * A redis-server owned by one test, on a spare port, that the test may stop,
 * kill, restart or stall (SIGSTOP) to inject faults for real.
 *
 * Persistence is off unless asked for: a restart comes back empty, or with
 * what a `SAVE` wrote before the kill. `{ appendfsync: 'always' }` runs it
 * with `appendonly yes` and `appendfsync always`: Redis writes and fsyncs the
 * append-only file before it answers a write, so every write it acknowledged
 * comes back after a SIGKILL (or a machine crash).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { tempDirPrefix } from './leftovers.ts';

export interface OwnedRedis {
  port: number;
  url: string;
  /** Start (again) on the same port, loading what its folder holds (an RDB from `SAVE`, the append-only file). */
  start(): Promise<void>;
  /** Delete what the (stopped) server persisted, as a lost disk: the next start is empty. */
  wipe(): void;
  /** SIGKILL the server. */
  kill(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing answers. */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
  /** Kill and remove its folder. */
  dispose(): Promise<void>;
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  server.close();
  await once(server, 'close');
  return port;
}

export interface RedisServerOptions {
  /** Run with the append-only file, fsynced before every answer (`always`). @default no persistence */
  appendfsync?: 'always';
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<OwnedRedis> {
  const port = await freePort();
  const persistence = options.appendfsync ? ['--appendonly', 'yes', '--appendfsync', options.appendfsync] : ['--appendonly', 'no'];
  const dir = mkdtempSync(join(tmpdir(), tempDirPrefix()));
  let child: ChildProcess | undefined;

  const api: OwnedRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', dir], {
        stdio: 'ignore',
      });
      const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined); // refused while redis-server boots; retried below
      const end = Date.now() + 10_000;
      for (;;) {
        try {
          await probe.connect();
          await probe.ping();
          probe.disconnect();
          return;
        } catch {
          probe.disconnect();
          if (Date.now() > end) throw new Error(`redis-server on ${port} did not start`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    async kill() {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
    wipe() {
      for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async dispose() {
      api.resume();
      await api.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await api.start();
  return api;
}
