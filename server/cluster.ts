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
 * Lifecycle: the primary prepares the database once (so N workers do not race
 * in CREATE DATABASE), forks the workers, and listens only when every worker
 * said it is ready. A worker that dies is replaced. SIGTERM or SIGINT: the
 * primary stops accepting, forwards SIGTERM to every worker (each drains as a
 * single node does) and exits 0 when all of them exited 0, or 1 after
 * `SHUTDOWN_TIMEOUT_MS` plus a margin, killing what is left.
 */
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { setupMaster } from '@socket.io/sticky';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { createDb, ensureDatabase, connectDb } from './db/database.ts';
import { migrateToLatest } from './db/migrate.ts';
import { StartupError } from './errors.ts';

/** IPC message a worker sends once its node is started. */
export const WORKER_READY = 'pinroom:worker-ready';

/** Longest a worker may take to start, ms. */
const WORKER_START_TIMEOUT_MS = 60_000;
/** Replacements of crashed workers are spaced by at least this, ms (no fork storm when every start fails). */
const RESPAWN_DELAY_MS = 1000;

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
  const startWorker = (): Promise<Worker> => {
    const worker = cluster.fork();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new StartupError(`worker ${worker.id} did not start within ${WORKER_START_TIMEOUT_MS} ms`)), WORKER_START_TIMEOUT_MS);
      worker.on('message', (message: { type?: string }) => {
        if (message?.type !== WORKER_READY) return;
        clearTimeout(timer);
        ready.add(worker.id);
        resolve(worker);
      });
      worker.once('exit', (code, signal) => {
        clearTimeout(timer);
        const wasReady = ready.delete(worker.id);
        if (!wasReady) {
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

  const server = createServer();
  setupMaster(server, { loadBalancingMethod: 'least-connection' });
  server.listen(config.http.port, config.http.host);
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  log.info({ workers: config.cluster.workers, url: `http://${host}:${port}` }, 'pinroom listening');

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
