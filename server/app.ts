/**
 * The composition root, and only wiring: the connections, the shared edges
 * (HTTP, Socket.IO, the event router and its limits), the three features
 * (auth, rooms, feed: each `createX(deps)` with `register`, `start`, `stop`),
 * health, and the order of start-up and shutdown. Nothing else creates a
 * connection; feature logic lives in the features.
 */
import type { Logger } from 'pino';
import { createAuth, type Auth } from './auth/auth.ts';
import { createLoaders, type Loaders } from './cache/loaders.ts';
import type { Config } from './config.ts';
import { connectDb, createDb, ensureDatabase, pingDb, type Db } from './db/database.ts';
import { migrateToLatest } from './db/migrate.ts';
import { StartupError } from './errors.ts';
import { createFeed, type Feed } from './feed/feed.ts';
import { createEventRouter } from './gateway/ack.ts';
import { confirmSubscriptions, createRedisAdapter, type RedisAdapter } from './gateway/adapter.ts';
import { createIo, type PinroomServer } from './gateway/create-io.ts';
import { closeAdapters } from './gateway/internals.ts';
import { createFloodLimit, createSocketRateLimit } from './gateway/rate-limit.ts';
import { createUserLimits } from './gateway/user-limits.ts';
import { createHttp, type HttpServer } from './http/create-http.ts';
import { registerDemoRoutes } from './http/demo.ts';
import { registerHealthRoutes } from './http/health.ts';
import { createLogger, startupLine } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { registerObservabilityRoutes } from './observability/http.ts';
import { createInstruments } from './observability/instruments.ts';
import { createSystemEvents, type SystemEvents } from './observability/system-events.ts';
import { closeRedis, clusterModeHint, connectRedis, createRedisClient, isClusterRedirect, type RedisClient as Redis } from './redis/connections.ts';
import { createKeys, type Keys } from './redis/keys.ts';
import { createScripts, type Scripts } from './redis/scripts.ts';
import { createRooms, type Rooms } from './rooms/rooms.ts';

export interface App {
  readonly config: Config;
  readonly logger: Logger;
  readonly http: HttpServer;
  readonly io: PinroomServer;
  readonly redis: Redis;
  readonly db: Db;
  readonly keys: Keys;
  readonly scripts: Scripts;
  /** Prometheus registry and counters of this app. */
  readonly metrics: Metrics;
  /** Cache-aside reads by id: public user profiles and room state. Write paths call `invalidate(id)` after commit. */
  readonly loaders: Loaders;
  /** Sign-in, sessions, access-token checks and the administrators. */
  readonly auth: Auth;
  /** Rooms, PINs, presence and host controls. */
  readonly rooms: Rooms;
  /** Activity feeds: streams, delivery, history, archive and the system log. */
  readonly feed: Feed;
  /** Internal errors and dependency transitions for the system log (rate-limited). */
  readonly systemEvents: SystemEvents;
  /** Connect, migrate, and listen. Throws `StartupError` when a dependency is unreachable. */
  start(): Promise<{ port: number; url: string }>;
  /** Drain and close everything, in order. Safe to call twice. */
  stop(): Promise<void>;
}

export interface AppOptions {
  logger?: Logger;
  /** False in a cluster worker: start() does not listen; the primary hands connections to `http.server`. @default true */
  listen?: boolean;
}

export function createApp(config: Config, options: AppOptions = {}): App {
  const logger = options.logger ?? createLogger(config);
  const keys = createKeys(config.redis.keyPrefix);

  // ---- connections (lazy: nothing connects before start())
  const redis = createRedisClient(config, logger, 'command');
  // Commands of the membership path (join, leave, presence, guess limits) on their own connection,
  // so that a join never waits in line behind a burst of feed appends.
  const roomsRedis = createRedisClient(config, logger, 'rooms');
  const redisSub = createRedisClient(config, logger, 'subscriber');
  // The feed's live channels (SSUBSCRIBE) and its archive worker each get their own connection.
  const feedLive = createRedisClient(config, logger, 'subscriber', { connectionName: 'pinroom:feed-live' });
  const feedArchive = createRedisClient(config, logger, 'command', { connectionName: 'pinroom:feed-archive' });
  const metrics = createMetrics();
  // Operator view: latency histograms, socket and event counters (server/observability).
  const instruments = createInstruments({ registry: metrics.registry });
  instruments.observeRedis(redis);
  instruments.observeRedis(roomsRedis);
  const redisConnections = { command: redis, rooms: roomsRedis, adapter: redisSub, 'feed-live': feedLive, 'feed-archive': feedArchive };
  for (const connection of Object.values(redisConnections)) instruments.countRedisErrors(connection);
  const { db, pool } = createDb(config, logger, { plugins: [instruments.pgPlugin], log: instruments.pgLog });
  instruments.observePool(pool);
  const scripts = createScripts(redis);
  // Internal errors and dependency transitions, rate-limited into the system log (written through the feed, below).
  const systemEvents = createSystemEvents({
    append: ({ type, payload }) => feed.store.log({ type, payload }).then(() => undefined),
    rate: config.observability.systemLogRate,
    logger,
  });
  systemEvents.watchRedis(redis);
  systemEvents.watchPostgres(pool);

  // ---- cached reads (Redis first, PostgreSQL behind)
  const loaders = createLoaders({ db, redis, scripts, keys, metrics, config, logger });

  // ---- edges
  const http = createHttp({ config, logger, onInternal: (where) => systemEvents.internalError(where) });
  const io = createIo({ config, logger, httpServer: http.server });
  const router = createEventRouter({
    logger,
    hooks: { ...instruments.routerHooks, onInternal: (event) => systemEvents.internalError({ event }) },
    admit: createFloodLimit(config.socket),
  });
  instruments.observeIo(io, logger);

  // ---- features (each: create, then register its handlers and routes)
  // A shared edge: per-user event limits across sockets and nodes (Redis), after the per-socket one (memory).
  const userLimits = createUserLimits({ redis, keys, config });
  // Auth's security events and the rooms' events go to the feed, created last (it asks the other two who may read what).
  const auth = createAuth({ config, logger, db, redis, scripts, keys, io, registry: metrics.registry, systemLog: (entry) => feed.service.systemLog(entry) });
  const rooms = createRooms({
    config,
    logger,
    db,
    redis: roomsRedis,
    keys,
    io,
    loaders,
    events: { emit: (event) => feed.service.emit(event) },
    feedPosition: (roomId) => feed.service.position(roomId),
    authenticate: (token) => auth.service.authenticate(token),
  });
  const feed = createFeed({
    config,
    logger,
    db,
    redis,
    scripts,
    keys,
    registry: metrics.registry,
    subscriberConnection: feedLive,
    archiveConnection: feedArchive,
    onLiveDelivery: instruments.observeFeedDelivery,
    isAdmin: auth.isAdmin,
    limits: userLimits,
    access: rooms.feedAccess,
  });
  // Guards run in this order: the token's expiry (auth), then the per-socket and per-user limits.
  auth.register({ router, http });
  router.addGuard(createSocketRateLimit({ eventsPerSecond: config.socket.eventsPerSecond }));
  router.addGuard(userLimits.guard);
  feed.register({ router, http });
  rooms.register({ router, http });
  registerObservabilityRoutes(http, {
    registry: metrics.registry,
    config,
    io,
    authenticate: (token) => auth.service.authenticate(token),
    isAdmin: (user) => auth.isAdmin(user.id),
    feed: () => feed.overview(),
  });

  // Every socket reaching here passed the auth middleware. Handlers are
  // registered once (above); a socket only gets the router's shared listeners.
  io.on('connection', (socket) => {
    if (!auth.attach(socket)) return;
    router.attach(socket);
  });

  let draining = false;
  const demo = registerDemoRoutes(http, { logger });
  let adapter: RedisAdapter | undefined;
  registerHealthRoutes(http, {
    checks: {
      // Every connection, not only the command one: after a Redis restart each reconnects on its own
      // backoff, and a feed subscription before the live-channel connection is back fails.
      redis: async () => {
        await redis.ping();
        const down = Object.entries(redisConnections).filter(([, c]) => c.status !== 'ready');
        if (down.length > 0) throw new Error(`redis connections not ready: ${down.map(([role]) => role).join(', ')}`);
      },
      postgres: () => pingDb(db),
      // 503 until the adapter's subscriptions are confirmed, and while its connection is down.
      adapter: async () => {
        if (!adapter?.confirmed()) throw new Error('adapter subscriptions not confirmed');
      },
    },
    draining: () => draining,
  });

  let started = false;
  let stopping: Promise<void> | undefined;

  async function closeConnections(): Promise<void> {
    await Promise.allSettled([...Object.values(redisConnections).map(closeRedis), db.destroy()]);
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
    metrics,
    loaders,
    auth,
    rooms,
    feed,
    systemEvents,

    async start() {
      try {
        await auth.loadKeys();
        await Promise.all(Object.values(redisConnections).map((c) => connectRedis(c, config)));
        if (config.db.createIfMissing) await ensureDatabase(config);
        await connectDb(db, config);
        await migrateToLatest(db, logger);
        await feed.start();
        const built = createRedisAdapter(config.socket.adapter, redis, redisSub, keys.adapterChannel, logger);
        adapter = built;
        io.adapter(built.adapter);
        await confirmSubscriptions(built, config);
        if (options.listen === false) await http.ready();
        else await http.listen({ port: config.http.port, host: config.http.host });
      } catch (err) {
        await closeConnections();
        // A single-Redis configuration meeting a cluster node, or a cross-slot command: one line naming the setting.
        if (!(err instanceof StartupError) && isClusterRedirect(err)) throw new StartupError(config.redis.clusterNodes ? `Redis Cluster refused a command at start-up (${(err as Error).message})` : clusterModeHint(config, (err as Error).message), { cause: err });
        throw err;
      }
      started = true;
      await rooms.start();
      await auth.start();
      const address = http.server.address();
      const port = typeof address === 'object' && address ? address.port : config.http.port;
      const url = `http://${config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host}:${port}`;
      if (options.listen === false) logger.info({ url }, 'pinroom worker ready');
      else {
        const line = startupLine({ url, demoBuilt: demo, redisUrl: config.redis.url, databaseUrl: config.db.url });
        logger.info(line.fields, line.message);
      }
      return { port, url };
    },

    stop() {
      stopping ??= (async () => {
        draining = true;
        if (started) {
          logger.info('shutting down: closing client connections');
          // Closing the transports (not a Socket.IO disconnect) makes clients
          // reconnect by themselves, to another node when this one is gone.
          // Presence of this node's sockets goes now, while the adapter can still announce it.
          await rooms.stop();
          await auth.stop();
          const closed = http.close();
          io.engine.close();
          await closed;
          await closeAdapters(io);
        }
        await feed.stop();
        await closeConnections();
        logger.info('shutdown complete');
      })();
      return stopping;
    },
  };
}
