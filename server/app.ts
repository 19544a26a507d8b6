/**
 * The composition root: builds every connection, store and service in one
 * place, wires them into HTTP and Socket.IO, and owns the order of start-up
 * and shutdown. Nothing else creates a connection.
 */
import { createAdapter } from '@socket.io/redis-adapter';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { connectDb, createDb, ensureDatabase, pingDb, type Db } from './db/database.ts';
import { migrateToLatest } from './db/migrate.ts';
import { createEventRouter } from './gateway/ack.ts';
import { createIo, type PinroomServer } from './gateway/create-io.ts';
import { createHttp, type HttpServer } from './http/create-http.ts';
import { registerHealthRoutes } from './http/health.ts';
import { createLogger } from './logger.ts';
import { closeRedis, connectRedis, createRedisClient } from './redis/connections.ts';
import { createKeys, type Keys } from './redis/keys.ts';
import { createScripts, type Scripts } from './redis/scripts.ts';

export interface App {
  readonly config: Config;
  readonly logger: Logger;
  readonly http: HttpServer;
  readonly io: PinroomServer;
  readonly redis: Redis;
  readonly db: Db;
  readonly keys: Keys;
  readonly scripts: Scripts;
  /** Connect, migrate, and listen. Throws `StartupError` when a dependency is unreachable. */
  start(): Promise<{ port: number; url: string }>;
  /** Drain and close everything, in order. Safe to call twice. */
  stop(): Promise<void>;
}

export interface AppOptions {
  logger?: Logger;
}

export function createApp(config: Config, options: AppOptions = {}): App {
  const logger = options.logger ?? createLogger(config);
  const keys = createKeys(config.redis.keyPrefix);

  // ---- connections (lazy: nothing connects before start())
  const redis = createRedisClient(config, logger, 'command');
  const redisSub = createRedisClient(config, logger, 'subscriber');
  const { db } = createDb(config, logger);
  const scripts = createScripts(redis);

  // ---- edges
  const http = createHttp({ config, logger });
  const io = createIo({ config, logger, httpServer: http.server });
  const router = createEventRouter({ logger });

  // ---- services and handlers
  // Features wire in here: HTTP routes on `http`, socket middleware on `io`,
  // per-socket handlers in the connection listener below.
  io.on('connection', (socket) => {
    void router;
    void socket;
  });

  let draining = false;
  registerHealthRoutes(http, {
    checks: { redis: () => redis.ping(), postgres: () => pingDb(db) },
    draining: () => draining,
  });

  let started = false;
  let stopping: Promise<void> | undefined;

  async function closeConnections(): Promise<void> {
    await Promise.allSettled([closeRedis(redis), closeRedis(redisSub), db.destroy()]);
  }

  return {
    config,
    logger,
    http,
    io,
    redis,
    db,
    keys,
    scripts,

    async start() {
      try {
        await Promise.all([connectRedis(redis, config), connectRedis(redisSub, config)]);
        if (config.db.createIfMissing) await ensureDatabase(config);
        await connectDb(db, config);
        await migrateToLatest(db, logger);
        io.adapter(createAdapter(redis, redisSub, { key: keys.adapterChannel }));
        await http.listen({ port: config.http.port, host: config.http.host });
      } catch (err) {
        await closeConnections();
        throw err;
      }
      started = true;
      const address = http.server.address();
      const port = typeof address === 'object' && address ? address.port : config.http.port;
      const url = `http://${config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host}:${port}`;
      logger.info({ url }, 'pinroom listening');
      return { port, url };
    },

    stop() {
      stopping ??= (async () => {
        draining = true;
        if (started) {
          logger.info('shutting down: closing client connections');
          // Closing the transports (not a Socket.IO disconnect) makes clients
          // reconnect by themselves, to another node when this one is gone.
          const closed = http.close();
          io.engine.close();
          await closed;
          await Promise.allSettled([...io._nsps.values()].map((nsp) => nsp.adapter.close()));
        }
        await closeConnections();
        logger.info('shutdown complete');
      })();
      return stopping;
    },
  };
}
