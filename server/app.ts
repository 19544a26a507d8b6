/**
 * The composition root: builds every connection, store and service in one
 * place, wires them into HTTP and Socket.IO, and owns the order of start-up
 * and shutdown. Nothing else creates a connection.
 */
import type { RedisClient as Redis } from './redis/connections.ts';
import type { Logger } from 'pino';
import { createLoaders, type Loaders } from './cache/loaders.ts';
import { createAdmins } from './auth/admins.ts';
import { registerHashMetrics, registerTokenMetrics } from './auth/auth-metrics.ts';
import { createAuthService, type AuthService } from './auth/auth-service.ts';
import { registerAuthRoutes } from './auth/http.ts';
import { createAuthRateLimits, createLoginBackoff } from './auth/rate-limits.ts';
import { createRefreshStore } from './auth/refresh-store.ts';
import { createSessionCheck } from './auth/session-check.ts';
import { createSessionRecheck } from './auth/session-recheck.ts';
import { createSessionSocketCap } from './auth/session-sockets.ts';
import { loadSigningKeys, type SigningKeys } from './auth/signing-keys.ts';
import { createSocketAuth } from './auth/socket-auth.ts';
import { createTokenService } from './auth/tokens.ts';
import type { Config } from './config.ts';
import { connectDb, createDb, ensureDatabase, pingDb, type Db } from './db/database.ts';
import { migrateToLatest } from './db/migrate.ts';
import { createFeed, type Feed } from './feed/feed.ts';
import { registerFeedMetrics } from './feed/feed-metrics.ts';
import { createEventRouter } from './gateway/ack.ts';
import { StartupError } from './errors.ts';
import { createRedisAdapter, type RedisAdapter } from './gateway/adapter.ts';
import { createIo, type PinroomServer } from './gateway/create-io.ts';
import { createHttp, type HttpServer } from './http/create-http.ts';
import { registerDemoRoutes } from './http/demo.ts';
import { registerHealthRoutes } from './http/health.ts';
import { createLogger, startupLine } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { createInstruments } from './observability/instruments.ts';
import { registerObservabilityRoutes } from './observability/http.ts';
import { createSystemEvents, type SystemEvents } from './observability/system-events.ts';
import { closeRedis, clusterModeHint, connectRedis, createRedisClient, isClusterRedirect, redisTarget } from './redis/connections.ts';
import { createKeys, type Keys } from './redis/keys.ts';
import { createScripts, type Scripts } from './redis/scripts.ts';
import { createFloodLimit, createSocketRateLimit } from './gateway/rate-limit.ts';
import { createUserLimits } from './gateway/user-limits.ts';
import { registerRoomRoutes } from './rooms/http.ts';
import { createIoNotifier } from './rooms/notifier.ts';
import { registerRoomHandlers } from './rooms/room-handlers.ts';
import { createRoomService, type RoomService } from './rooms/room-service.ts';
import { createGuestRetention } from './users/guest-retention.ts';
import { createUserRepository } from './users/user.repository.ts';

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
  /** Sign-in, sessions and access-token checks. */
  readonly auth: AuthService;
  /** Rooms, PINs, presence and host controls. */
  readonly rooms: RoomService;
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

  // ---- services and handlers
  // Access-token keys are read (or, in development, generated) by start().
  let signingKeys: SigningKeys | undefined;
  const currentKeys = (): SigningKeys => {
    if (!signingKeys) throw new Error('signing keys are not loaded: start() first');
    return signingKeys;
  };
  const users = createUserRepository({ db });
  const tokens = createTokenService({ config: config.auth, keys: currentKeys });
  registerTokenMetrics(metrics.registry, tokens);
  // Whether sessions are still active: the handshake's check, batched per event-loop turn; `states(ids)` for many at once.
  const sessions = createSessionCheck({ scripts, keys });
  const admins = createAdmins(config.auth);
  const auth = createAuthService({
    config: config.auth,
    logger,
    users,
    tokens,
    refresh: createRefreshStore({ scripts, keys, config: config.auth }),
    sessions,
    limits: createAuthRateLimits({ redis, keys, limits: config.auth.rateLimits }),
    backoff: createLoginBackoff({ redis, scripts, keys, config: config.auth }),
    signingKeys: currentKeys,
    onSessionRevoked: (sessionId) => socketAuth.closeSession(sessionId),
    audit: ({ type, at: _at, ...details }) => void feed.service.systemLog({ type, actor: null, payload: details }),
  });
  const socketAuth = createSocketAuth({ io, auth, router, config, logger });
  const sessionSockets = createSessionSocketCap({ io, max: config.auth.sessionMaxSockets });
  const sessionRecheck = createSessionRecheck({ io, sessionStates: (ids) => sessions.states(ids), intervalMs: config.auth.sessionRecheckMs, logger });
  const guestRetention = createGuestRetention({ db, config: config.auth, logger });
  registerAuthRoutes(http, { auth });
  io.use((socket, next) => void socketAuth.middleware(socket, next));
  io.use((socket, next) => sessionSockets.middleware(socket, next));
  // Per socket first (memory, no round trip), then per user across sockets and nodes (Redis).
  const userLimits = createUserLimits({ redis, keys, config });
  router.addGuard(socketAuth.guard);
  router.addGuard(createSocketRateLimit({ eventsPerSecond: config.socket.eventsPerSecond }));
  router.addGuard(userLimits.guard);

  // ---- activity feed (membership: this connection is in the room's group, kept by the rooms feature)
  const feed = createFeed({
    config,
    logger,
    db,
    redis,
    scripts,
    keys,
    subscriberConnection: feedLive,
    archiveConnection: feedArchive,
    router,
    http,
    onLiveDelivery: instruments.observeFeedDelivery,
    isAdmin: (userId) => admins.isAdmin(userId),
    limits: userLimits,
    access: {
      async roleOf(roomId, user) {
        if (!user.inRoom?.(roomId)) return null;
        const room = (await loaders.rooms.get(roomId)).value;
        if (!room || room.status === 'ended') return null;
        return room.hostId === user.id ? 'host' : 'member';
      },
      async isOpen(roomId) {
        const room = (await loaders.rooms.get(roomId)).value;
        return room !== null && room.status !== 'ended';
      },
    },
  });
  registerFeedMetrics(metrics.registry, feed);
  registerHashMetrics(metrics.registry, auth);
  registerObservabilityRoutes(http, {
    registry: metrics.registry,
    config,
    io,
    authenticate: (token) => auth.authenticate(token),
    isAdmin: (user) => admins.isAdmin(user.id),
    async feed() {
      const lag = await feed.archiveLag().catch(() => ({ seconds: Number.NaN, rooms: Number.NaN }));
      const relay = feed.relay.stats();
      return {
        archiveLagSeconds: lag.seconds,
        archivePendingRooms: lag.rooms,
        archiveDeadLetters: feed.archiver.stats().deadLetters,
        channels: relay.channels,
        subscriptions: relay.subscriptions,
      };
    },
  });

  // ---- rooms and PINs
  const rooms = createRoomService({
    config: config.rooms,
    db,
    redis: roomsRedis,
    scripts: createScripts(roomsRedis),
    keys,
    logger,
    rooms: loaders.rooms,
    notifier: createIoNotifier(io),
    events: { emit: (event) => feed.service.emit(event) },
    feedPosition: (roomId) => feed.service.position(roomId),
  });
  registerRoomRoutes(http, { rooms, authenticate: (token) => auth.authenticate(token) });

  registerRoomHandlers({ router, rooms, logger });

  // Every socket reaching here passed the auth middleware. Handlers are
  // registered once (above, and by the auth and feed features); a socket
  // only gets the router's shared listeners.
  io.on('connection', (socket) => {
    if (!sessionSockets.admit(socket)) return;
    socketAuth.attach(socket);
    router.attach(socket);
  });

  let draining = false;
  const demo = registerDemoRoutes(http, { logger });
  let adapter: RedisAdapter | undefined;
  /** Start-up waits (bounded) for the adapter's subscriptions; a refusal or no answer fails it in one line. */
  async function confirmAdapter(built: RedisAdapter): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        built.subscribed(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${config.redis.connectTimeoutMs} ms`)), config.redis.connectTimeoutMs);
        }),
      ]);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new StartupError(isClusterRedirect(err) ? clusterModeHint(config, reason) : `the Socket.IO adapter (SOCKET_ADAPTER=${config.socket.adapter}) could not subscribe on ${redisTarget(config)}: ${reason}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }
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
        signingKeys = await loadSigningKeys(config.auth, config.env);
        logger.info({ kid: signingKeys.currentKid, source: signingKeys.source, verifyKeys: signingKeys.jwks.keys.length }, 'access-token keys loaded');
        await Promise.all(Object.values(redisConnections).map((c) => connectRedis(c, config)));
        if (config.db.createIfMissing) await ensureDatabase(config);
        await connectDb(db, config);
        await migrateToLatest(db, logger);
        await feed.start();
        const built = createRedisAdapter(config.socket.adapter, redis, redisSub, keys.adapterChannel, logger);
        adapter = built;
        io.adapter(built.adapter);
        await confirmAdapter(built);
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
      sessionRecheck.start();
      guestRetention.start();
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
          socketAuth.stop();
          await Promise.all([sessionRecheck.stop(), guestRetention.stop(), auth.stop()]);
          const closed = http.close();
          io.engine.close();
          await closed;
          await Promise.allSettled([...io._nsps.values()].map((nsp) => nsp.adapter.close()));
        }
        await feed.stop();
        await closeConnections();
        logger.info('shutdown complete');
      })();
      return stopping;
    },
  };
}
