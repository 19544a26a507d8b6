/**
 * `WORKERS=N`: N full pinroom nodes on one machine, as node:cluster workers
 * behind one port.
 *
 * The primary owns the listening socket and nothing else: no Redis, no
 * Socket.IO. `@socket.io/sticky` reads the first bytes of each TCP
 * connection, and hands it to the worker that owns the Engine.IO session
 * named in its `sid` (long-polling requests of one session must all reach
 * the process that holds it), or to the least-loaded worker for a new one.
 * WebSocket connections are one TCP connection, so they are sticky by
 * construction. Workers are ordinary nodes: they share rooms, presence and
 * broadcasts through the Redis adapter exactly as nodes on different
 * machines do.
 *
 * Two races of the library are closed here: a session id is bound to its
 * worker before the handshake answers (`setupStickyWorker`), and connections
 * wait while a worker starts (`createHandOverGate`).
 *
 * Lifecycle: the primary prepares the database once (so N workers do not race
 * in CREATE DATABASE), forks the workers, and listens only when every worker
 * said it is ready. A worker that dies is replaced. SIGTERM or SIGINT: the
 * primary stops accepting, forwards SIGTERM to every worker (each drains as a
 * single node does) and exits 0 when all of them exited 0, or 1 after
 * `SHUTDOWN_TIMEOUT_MS` plus a margin, killing what is left.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { setupMaster, setupWorker } from '@socket.io/sticky';
import type { Logger } from 'pino';
import type { Server as SocketIoServer } from 'socket.io';
import type { Config } from './config.ts';
import { createDb, ensureDatabase, connectDb } from './db/database.ts';
import { migrateToLatest } from './db/migrate.ts';
import { StartupError } from './errors.ts';
import { demoBuilt } from './http/demo.ts';
import { startupLine } from './logger.ts';

/** IPC message a worker sends once its node is started. */
const WORKER_READY = 'pinroom:worker-ready';

/** Longest a worker may take to start, ms. */
const WORKER_START_TIMEOUT_MS = 60_000;
/** Most connections held while a worker starts; past it, new ones are refused (closed). */
const MAX_HELD_CONNECTIONS = 10_000;
/** Replacements of crashed workers are spaced by at least this, ms (no fork storm when every start fails). */
const RESPAWN_DELAY_MS = 1000;

/** Worker → primary: bind this Engine.IO session id to me, and answer when it is bound. */
const BIND_SESSION = 'pinroom:bind-session';
/** Primary → worker: the session id is bound. */
const SESSION_BOUND = 'pinroom:session-bound';
/** Longest a handshake waits for the primary to bind its session id, ms. */
const BIND_TIMEOUT_MS = 5000;

/**
 * Serve the connections the primary hands over (`@socket.io/sticky`), with
 * each Engine.IO session bound to this worker before its handshake answers.
 *
 * The library binds a session when the worker reports it, which happens after
 * the handshake response is written: a polling client's next request (the
 * Socket.IO CONNECT, sent at once) can reach the primary first, be routed to
 * another worker, and meet "Session ID unknown"; the client then sees a
 * disconnect before it ever connected. Here the id is made in `generateId`,
 * and the handshake waits until the primary has bound it. The binding uses the
 * library's own `sticky:connection` message (the only way into its table), so
 * each session is reported twice; a second `sticky:disconnection` on close
 * keeps the library's per-worker counts for least-connection balancing even.
 */
export function setupStickyWorker(io: SocketIoServer): void {
  setupWorker(io);
  const pending = new Map<string, () => void>();
  process.on('message', (message: { type?: string; data?: string }) => {
    if (message?.type !== SESSION_BOUND || typeof message.data !== 'string') return;
    pending.get(message.data)?.();
    pending.delete(message.data);
  });
  io.engine.generateId = () => {
    // 20 characters of [A-Za-z0-9_-]: the session-id shape the primary's router matches.
    const id = randomBytes(15).toString('base64url');
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the primary did not bind session ${id} within ${BIND_TIMEOUT_MS} ms`));
      }, BIND_TIMEOUT_MS);
      pending.set(id, () => {
        clearTimeout(timer);
        resolve(id);
      });
      process.send?.({ type: 'sticky:connection', data: id, bind: BIND_SESSION }, undefined, {}, (err: Error | null) => {
        if (!err) return;
        clearTimeout(timer);
        pending.delete(id);
        reject(err);
      });
    });
  };
  io.engine.on('connection', (socket: { id: string; once(event: 'close', listener: () => void): void }) => {
    socket.once('close', () => process.send?.({ type: 'sticky:disconnection', data: socket.id }, undefined, () => undefined));
  });
}

/** Tell the primary this worker's node is up (no-op outside a cluster worker). */
export function reportWorkerReady(): void {
  if (cluster.isWorker) process.send?.({ type: WORKER_READY });
}

/** Run the primary of `config.cluster.workers` workers; resolves once they are all ready and the port listens. */
export async function runPrimary(config: Config, logger: Logger): Promise<void> {
  const log = logger.child({ role: 'primary' });
  await prepareDatabase(config, log);

  // @socket.io/sticky sends the first bytes of a connection as a Buffer over IPC: JSON would turn it into an object.
  cluster.setupPrimary({ serialization: 'advanced' });
  let stopping = false;
  const ready = new Set<number>();
  const gate = createHandOverGate();
  const startWorker = (): Promise<Worker> => {
    const worker = cluster.fork();
    gate.starting(+1);
    // A message to a worker that has just died fails on its IPC channel: logged, never fatal to the primary.
    worker.on('error', (err: Error) => log.warn({ err: { message: err.message }, workerPid: worker.process.pid }, 'worker IPC error'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new StartupError(`worker ${worker.id} did not start within ${WORKER_START_TIMEOUT_MS} ms`)), WORKER_START_TIMEOUT_MS);
      worker.on('message', (message: { type?: string }) => {
        if (message?.type !== WORKER_READY) return;
        clearTimeout(timer);
        ready.add(worker.id);
        gate.starting(-1);
        resolve(worker);
      });
      worker.once('exit', (code, signal) => {
        clearTimeout(timer);
        const wasReady = ready.delete(worker.id);
        if (!wasReady) {
          gate.starting(-1);
          reject(new StartupError(`a worker exited during start-up (${signal ?? `code ${code}`}); see its message above`));
          return;
        }
        if (stopping) return;
        log.error({ workerPid: worker.process.pid, code, signal }, 'worker died; starting a replacement');
        setTimeout(() => {
          if (!stopping) startWorker().catch((err: unknown) => log.error({ err }, 'replacement worker failed to start'));
        }, RESPAWN_DELAY_MS).unref();
      });
    });
  };

  try {
    await Promise.all(Array.from({ length: config.cluster.workers }, startWorker));
  } catch (err) {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
    throw err;
  }

  // Half-open and error handling as node:http's server sets them for its sockets.
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true });
  gate.attach(server);
  // Registered after the library's own listener, so the session is in its table when the worker hears back.
  cluster.on('message', (worker, message: { type?: string; data?: unknown; bind?: string }) => {
    if (message?.type === 'sticky:connection' && message.bind === BIND_SESSION) worker.send({ type: SESSION_BOUND, data: message.data }, undefined, () => undefined);
  });
  server.listen(config.http.port, config.http.host);
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  const line = startupLine({ url: `http://${host}:${port}`, demoBuilt: demoBuilt(), redisUrl: config.redis.url, databaseUrl: config.db.url });
  log.info({ workers: config.cluster.workers, ...line.fields }, line.message);

  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'signal received: draining workers');
    server.close();
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    const exits = workers.map((w) => (w.isDead() ? Promise.resolve(w.process.exitCode ?? 0) : once(w, 'exit').then(([code]) => code as number | null)));
    for (const worker of workers) if (!worker.isDead()) worker.process.kill('SIGTERM');
    const deadline = setTimeout(() => {
      log.error({ timeoutMs: config.http.shutdownTimeoutMs }, 'workers did not drain in time; killing them');
      for (const worker of workers) if (!worker.isDead()) worker.process.kill('SIGKILL');
    }, config.http.shutdownTimeoutMs + 2000);
    void Promise.all(exits).then((codes) => {
      clearTimeout(deadline);
      const clean = codes.every((c) => c === 0);
      log.info({ codes }, clean ? 'all workers drained' : 'some workers did not exit cleanly');
      process.exit(clean ? 0 : 1);
    });
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

/**
 * Between the listening socket and `@socket.io/sticky`'s router: connections
 * go to the router only while no worker is starting, and wait otherwise.
 *
 * The router balances over every forked worker, so a replacement for a
 * crashed one would get the next connection at once, before its node exists
 * to take it; such a connection is dropped and its client waits forever. A
 * plain TCP listener (paused on connect) hands the router the sockets it may
 * route now, and holds the rest (at most `MAX_HELD_CONNECTIONS`) until the
 * starting worker is ready or has died. New connections wait for one worker
 * start-up (seconds) after a crash; connections already open are not touched.
 */
function createHandOverGate() {
  // The router listens for 'connection' and reads the socket itself: an emitter stands in for its HTTP server.
  const router = new EventEmitter();
  setupMaster(router as unknown as HttpServer, { loadBalancingMethod: 'least-connection' });
  let starting = 0;
  const held = new Set<Socket>();
  const handOver = (socket: Socket) => {
    router.emit('connection', socket);
    socket.resume();
  };
  return {
    starting(delta: 1 | -1): void {
      starting += delta;
      if (starting > 0) return;
      for (const socket of held) {
        held.delete(socket);
        if (!socket.destroyed) handOver(socket);
      }
    },
    attach(server: NetServer): void {
      server.on('connection', (socket: Socket) => {
        socket.on('error', () => socket.destroy()); // a reset client; the router writes answers to sockets it does not own
        if (starting === 0) return handOver(socket);
        if (held.size >= MAX_HELD_CONNECTIONS) return void socket.destroy();
        held.add(socket);
        socket.once('close', () => held.delete(socket));
      });
    },
  };
}

/** Create the database and apply migrations once, before any worker starts. */
async function prepareDatabase(config: Config, log: Logger): Promise<void> {
  if (config.db.createIfMissing) await ensureDatabase(config);
  const { db } = createDb(config, log);
  try {
    await connectDb(db, config);
    await migrateToLatest(db, log);
  } finally {
    await db.destroy();
  }
}
