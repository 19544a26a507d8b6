/**
 * What an operator sees of a node, on the app's Prometheus registry
 * (`GET /metrics`, see `http.ts`):
 *
 * - `pinroom_sockets_connected`, `pinroom_engine_connections`: sockets in the
 *   main namespace and Engine.IO connections on this node;
 * - `pinroom_rooms_live`: pinroom rooms with at least one member socket on this node;
 * - `pinroom_socket_events_in_total{event}`, `pinroom_socket_events_out_total{event}`:
 *   Socket.IO events received by the event router and sent to sockets
 *   (a broadcast counts once per receiving socket);
 * - `pinroom_socket_acks_total{event,code}`: acks sent, `code="ok"` or the error code;
 * - `pinroom_redis_command_duration_seconds{command}` (command connection only;
 *   blocking reads would measure their own wait) and
 *   `pinroom_pg_query_duration_seconds{kind}`: latency histograms;
 * - `pinroom_redis_errors_total{kind}`, `pinroom_pg_errors_total{kind}`: a
 *   command or query that failed (`kind="command"`/`"query"`), and a
 *   connection that failed to open or was lost (`kind="connection"`);
 * - `pinroom_feed_delivery_seconds`: age of a feed entry when this node fans
 *   it out live, from its append (publish → delivery; once per entry and node);
 * - Node's defaults (prom-client): event-loop lag (`nodejs_eventloop_lag_*`),
 *   resident memory and heap (`process_resident_memory_bytes`, `nodejs_heap_*`), ...
 *
 * The cache (`pinroom_cache_*`) and the feed (`pinroom_feed_archive_lag_seconds`, ...)
 * register their own series. Hot paths only bump plain numbers; the counters
 * take them when scraped, so a fan-out to thousands of sockets pays no label
 * hashing per delivery.
 */
import type { KyselyPlugin, LogEvent, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import type { RedisClient as Redis } from '../redis/connections.ts';
import type pg from 'pg';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PinroomServer, PinroomSocket } from '../gateway/create-io.ts';

const LATENCY_BUCKETS = [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Counts by label value, kept as plain numbers and added to a Counter when it is collected. */
function deferredCounter(counter: Counter<string>, labelsOf: (key: string) => Record<string, string>) {
  const pending = new Map<string, number>();
  return {
    add(key: string, n = 1): void {
      pending.set(key, (pending.get(key) ?? 0) + n);
    },
    flush(): void {
      for (const [key, n] of pending) counter.inc(labelsOf(key), n);
      pending.clear();
    },
  };
}

export type Instruments = ReturnType<typeof createInstruments>;

export function createInstruments({ registry }: { registry: Registry }) {
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const eventsIn = deferredCounter(
    new Counter({
      name: 'pinroom_socket_events_in_total',
      help: 'Socket.IO events received by the event router, by event name.',
      labelNames: ['event'],
      registers,
      collect: () => eventsIn.flush(),
    }),
    (event) => ({ event }),
  );
  const eventsOut = deferredCounter(
    new Counter({
      name: 'pinroom_socket_events_out_total',
      help: 'Socket.IO events sent to sockets of this node, by event name (a broadcast counts once per receiving socket).',
      labelNames: ['event'],
      registers,
      collect: () => eventsOut.flush(),
    }),
    (event) => ({ event }),
  );
  const acks = deferredCounter(
    new Counter({
      name: 'pinroom_socket_acks_total',
      help: 'Acks sent, by event and code ("ok" or the error code).',
      labelNames: ['event', 'code'],
      registers,
      collect: () => acks.flush(),
    }),
    (key) => {
      const bar = key.indexOf('|');
      return { event: key.slice(0, bar), code: key.slice(bar + 1) };
    },
  );

  const redisLatency = new Histogram({
    name: 'pinroom_redis_command_duration_seconds',
    help: 'Redis command latency on the command connection (round trip as ioredis sees it), by command.',
    labelNames: ['command'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const pgLatency = new Histogram({
    name: 'pinroom_pg_query_duration_seconds',
    help: 'PostgreSQL query latency (Kysely queries, completed), by kind (select, insert, update, delete, other).',
    labelNames: ['kind'],
    buckets: LATENCY_BUCKETS,
    registers,
  });

  const redisErrors = new Counter({
    name: 'pinroom_redis_errors_total',
    help: 'Redis failures: commands that failed on an observed connection (kind="command"), connection errors on any connection (kind="connection").',
    labelNames: ['kind'],
    registers,
  });
  const pgErrors = new Counter({
    name: 'pinroom_pg_errors_total',
    help: 'PostgreSQL failures: queries that failed (kind="query"), connections that could not be opened or were lost (kind="connection").',
    labelNames: ['kind'],
    registers,
  });
  // Every series shows from the first scrape, at 0.
  for (const kind of ['command', 'connection']) redisErrors.inc({ kind }, 0);
  for (const kind of ['query', 'connection']) pgErrors.inc({ kind }, 0);
  const feedDelivery = new Histogram({
    name: 'pinroom_feed_delivery_seconds',
    help: 'Age of a feed entry when this node fans it out to its live subscribers: from the append (stream id time, Redis clock) to the fan-out (this node clock). Once per entry and node.',
    buckets: LATENCY_BUCKETS,
    registers,
  });

  /** Incoming-event and ack counters for the event router. */
  const routerHooks = {
    onEvent: (event: string) => eventsIn.add(event),
    onAck: (event: string, code: string) => acks.add(`${event}|${code}`),
  };

  // One shared listener for every socket (no closure per connection).
  const countOutgoing = (event: string) => eventsOut.add(event);

  /** Gauges of a Socket.IO server, and counting of its outgoing events. Call once per server. */
  function observeIo(io: PinroomServer, logger?: Pick<Logger, 'debug' | 'isLevelEnabled'>): void {
    new Gauge({
      name: 'pinroom_sockets_connected',
      help: 'Sockets connected to the main namespace on this node.',
      registers,
      collect() {
        this.set(io.of('/').sockets.size);
      },
    });
    new Gauge({
      name: 'pinroom_engine_connections',
      help: 'Engine.IO connections open on this node (including ones not yet authenticated).',
      registers,
      collect() {
        this.set(io.engine.clientsCount);
      },
    });
    new Gauge({
      name: 'pinroom_rooms_live',
      help: 'pinroom rooms with at least one member socket on this node.',
      registers,
      collect() {
        let live = 0;
        for (const name of io.of('/').adapter.rooms.keys()) if (name.startsWith('room:')) live++;
        this.set(live);
      },
    });
    io.on('connection', (socket: PinroomSocket) => {
      socket.onAnyOutgoing(countOutgoing);
      if (logger?.isLevelEnabled('debug')) {
        logger.debug({ socketId: socket.id, userId: socket.data.user?.id, transport: socket.conn.transport.name }, 'socket connected');
        socket.once('disconnect', (reason) => logger.debug({ socketId: socket.id, userId: socket.data.user?.id, reason }, 'socket disconnected'));
      }
    });
  }

  /** Time every command sent on `redis` (call for the command connection only). */
  function observeRedis(redis: Redis): void {
    const seen = new WeakSet<object>();
    const send = redis.sendCommand.bind(redis);
    // Every argument passed on: a Cluster's pipeline passes the target node third.
    redis.sendCommand = ((command: Parameters<Redis['sendCommand']>[0], ...rest: unknown[]) => {
      // A command replayed from the offline queue passes here twice: time it once.
      if (!seen.has(command)) {
        seen.add(command);
        const end = redisLatency.startTimer({ command: command.name });
        command.promise.then(
          () => end(),
          (err: unknown) => {
            end();
            if (!handledByClient(command, err)) redisErrors.inc({ kind: 'command' });
          },
        );
      }
      return (send as (c: unknown, ...r: unknown[]) => unknown)(command, ...rest);
    }) as Redis['sendCommand'];
  }

  /** Count connection errors of a Redis client (call once per connection). */
  function countRedisErrors(redis: Redis): void {
    redis.on('error', () => redisErrors.inc({ kind: 'connection' }));
  }

  /** Count PostgreSQL connections of `pool` that fail to open or are lost. */
  function observePool(pool: pg.Pool): void {
    const lost = () => pgErrors.inc({ kind: 'connection' });
    pool.on('error', lost);
    pool.on('connect', (client) => client.on('error', lost));
    // A connection that cannot be opened emits nothing: watch the promise form of `connect` (what Kysely calls).
    const connect = pool.connect.bind(pool) as (...args: unknown[]) => unknown;
    (pool as { connect: (...args: unknown[]) => unknown }).connect = (...args: unknown[]) => {
      if (args.length > 0) return connect(...args);
      return (connect() as Promise<pg.PoolClient>).catch((err: unknown) => {
        lost();
        throw err;
      });
    };
  }

  /** Kysely's `log` option: counts failed queries. */
  const pgLog = (event: LogEvent): void => {
    if (event.level === 'error') pgErrors.inc({ kind: 'query' });
  };

  /** Publish → delivery latency of the feed's live fan-out (the relay's `onLiveDelivery`). */
  const observeFeedDelivery = (ageSeconds: number): void => feedDelivery.observe(Math.max(0, ageSeconds));

  /** A Kysely plugin timing each query from compilation to result. */
  const started = new WeakMap<object, { at: bigint; kind: string }>();
  const pgPlugin: KyselyPlugin = {
    transformQuery({ node, queryId }: PluginTransformQueryArgs): RootOperationNode {
      started.set(queryId, { at: process.hrtime.bigint(), kind: kindOf(node) });
      return node;
    },
    async transformResult({ result, queryId }: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      const start = started.get(queryId);
      if (start) {
        started.delete(queryId);
        pgLatency.observe({ kind: start.kind }, Number(process.hrtime.bigint() - start.at) / 1e9);
      }
      return result;
    },
  };

  return { routerHooks, observeIo, observeRedis, countRedisErrors, observePool, pgLog, pgPlugin, observeFeedDelivery };
}

/**
 * Refusals ioredis expects and answers by itself, which are no failure:
 * NOSCRIPT (it sends EVAL after EVALSHA) and `CLIENT SETINFO` on connect,
 * which Redis before 7.2 does not know.
 */
function handledByClient(command: { name: string; args: unknown[] }, err: unknown): boolean {
  if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return true;
  return command.name === 'client' && String(command.args[0]).toLowerCase() === 'setinfo';
}

function kindOf(node: RootOperationNode): string {
  switch (node.kind) {
    case 'SelectQueryNode':
      return 'select';
    case 'InsertQueryNode':
      return 'insert';
    case 'UpdateQueryNode':
      return 'update';
    case 'DeleteQueryNode':
      return 'delete';
    default:
      return 'other';
  }
}
