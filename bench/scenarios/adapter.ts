/**
 * Socket.IO Redis adapters side by side in the same run: the sharded adapter
 * (`createShardedAdapter`, Redis 7 SPUBLISH/SSUBSCRIBE, one channel per room)
 * against the classic one (`createAdapter`, PUBLISH and one PSUBSCRIBE per
 * node), both built by pinroom's own `createRedisAdapter` on pinroom's Redis
 * clients. `pinroom` is the sharded adapter, `baseline` the classic one.
 *
 * NODES Socket.IO servers run in this process (each with its own command and
 * subscriber connection, as separate nodes have), CLIENTS_PER_NODE websocket
 * clients on each. Every socket joins its own `user:` and `session:` groups
 * as pinroom's do, plus one room:
 *
 * - spread rooms: every room has members on every node, broadcasts from node 0
 *   (a room whose members are spread over the cluster);
 * - local rooms: every room has all its members on one node, and each node
 *   broadcasts to its own rooms (the classic adapter still sends every
 *   broadcast to every node; the sharded one only to subscribed nodes).
 *
 * Measured: deliveries per second at saturation (BROADCASTS emitted in
 * batches, timed until the last delivery), delivery latency p50/p99 at a
 * modest rate, and connect-and-join time (the sharded adapter subscribes a
 * channel per new room); medians over interleaved rounds (see `measureBoth`).
 *
 *   node --import tsx bench/scenarios/adapter.ts
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server as HttpServer } from 'node:http';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Server } from 'socket.io';
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client';
import { loadConfig } from '../../server/config.ts';
import { createRedisAdapter, type AdapterKind } from '../../server/gateway/adapter.ts';
import { createLogger } from '../../server/logger.ts';
import { closeRedis, connectRedis, createRedisClient } from '../../server/redis/connections.ts';
import { BASE_REDIS_URL, deleteByPrefix } from '../../tests/support/context.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const NODES = 3;
const CLIENTS_PER_NODE = 120;
const ROOM_SIZE = 6;
const BROADCASTS = 3000;
const BATCH = 50;
const LATENCY_RATE_PER_S = 200;
const LATENCY_SECONDS = 1;
const ROUNDS = 2;
const SATURATION_RUNS = 3;

const round2 = (n: number) => Math.round(n * 100) / 100;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

type Layout = 'spread' | 'local';

interface Cluster {
  servers: Server[];
  clients: ClientSocket[];
  /** Room names with the node index that broadcasts to each. */
  rooms: { name: string; from: number; members: number }[];
  joinMs: number;
  close(): Promise<void>;
}

async function startCluster(kind: AdapterKind, layout: Layout): Promise<Cluster> {
  const prefix = `pinroom:bench:adapter:${randomBytes(4).toString('hex')}:`;
  const config = loadConfig({ REDIS_URL: BASE_REDIS_URL, KEY_PREFIX: prefix, LOG_LEVEL: 'silent' });
  const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
  const redisClients: ReturnType<typeof createRedisClient>[] = [];
  const servers: Server[] = [];
  const https: HttpServer[] = [];
  const urls: string[] = [];
  for (let n = 0; n < NODES; n++) {
    const pub = createRedisClient(config, logger, `bench-pub-${n}`);
    const sub = createRedisClient(config, logger, 'subscriber');
    await Promise.all([connectRedis(pub, config), connectRedis(sub, config)]);
    redisClients.push(pub, sub);
    const http = createServer();
    const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
    io.adapter(createRedisAdapter(kind, pub, sub, `${prefix}socket.io`).adapter);
    io.on('connection', (socket) => {
      const { room, user } = socket.handshake.query as { room: string; user: string };
      void socket.join([`user:${user}`, `session:${user}`, room]);
      socket.emit('joined');
    });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    urls.push(`http://127.0.0.1:${(http.address() as { port: number }).port}`);
    servers.push(io);
    https.push(http);
  }

  // Rooms: spread = each room has ROOM_SIZE/NODES members on every node, broadcast from node 0;
  // local = each room's members all on one node, broadcast from that node.
  const total = NODES * CLIENTS_PER_NODE;
  const roomCount = total / ROOM_SIZE;
  const rooms = Array.from({ length: roomCount }, (_, r) => ({ name: `room:${r}`, from: layout === 'spread' ? 0 : r % NODES, members: ROOM_SIZE }));
  const placements: { node: number; room: string }[] = [];
  if (layout === 'spread') {
    for (const room of rooms) for (let m = 0; m < ROOM_SIZE; m++) placements.push({ node: m % NODES, room: room.name });
  } else {
    for (const room of rooms) for (let m = 0; m < ROOM_SIZE; m++) placements.push({ node: room.from, room: room.name });
  }

  const clients: ClientSocket[] = [];
  const start = performance.now();
  const CONCURRENT = 40;
  for (let i = 0; i < placements.length; i += CONCURRENT) {
    await Promise.all(
      placements.slice(i, i + CONCURRENT).map(async ({ node, room }, j) => {
        const client = connectClient(urls[node]!, { transports: ['websocket'], forceNew: true, reconnection: false, query: { room, user: String(i + j) } });
        clients.push(client);
        await new Promise<void>((resolve, reject) => {
          client.once('joined', () => resolve());
          client.once('connect_error', reject);
        });
      }),
    );
  }
  const joinMs = performance.now() - start;

  return {
    servers,
    clients,
    rooms,
    joinMs,
    async close() {
      for (const c of clients) c.close();
      for (const io of servers) {
        await Promise.allSettled([...io._nsps.values()].map((nsp) => nsp.adapter.close()));
        io.close();
      }
      for (const h of https) h.closeAllConnections();
      const cleaner = redisClients[0]!;
      await deleteByPrefix(cleaner, prefix);
      await Promise.allSettled(redisClients.map((c) => closeRedis(c)));
    },
  };
}

/** Emit BROADCASTS broadcasts in batches and time until every member got each one. */
async function saturation(cluster: Cluster): Promise<{ deliveriesPerSecond: number; cpuPercent: number }> {
  const expected = BROADCASTS * ROOM_SIZE;
  let received = 0;
  let done: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const listener = () => {
    if (++received === expected) done();
  };
  for (const c of cluster.clients) c.on('b', listener);
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < BROADCASTS; i += BATCH) {
    for (let k = i; k < Math.min(BROADCASTS, i + BATCH); k++) {
      const room = cluster.rooms[k % cluster.rooms.length]!;
      cluster.servers[room.from]!.to(room.name).emit('b', { k });
    }
    await new Promise((r) => setImmediate(r));
  }
  await Promise.race([finished, new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${received}/${expected} deliveries`)), 60_000))]);
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  for (const c of cluster.clients) c.off('b', listener);
  return { deliveriesPerSecond: Math.round((expected / ms) * 1000), cpuPercent: Math.round(((used.user + used.system) / 1000 / ms) * 100) };
}

/** Broadcast at a modest fixed rate and record send-to-delivery latency, ms. */
async function latency(cluster: Cluster): Promise<number[]> {
  const samples: number[] = [];
  const listener = (p: { t: number }) => samples.push(performance.now() - p.t);
  for (const c of cluster.clients) c.on('l', listener);
  const count = LATENCY_RATE_PER_S * LATENCY_SECONDS;
  for (let k = 0; k < count; k++) {
    const room = cluster.rooms[k % cluster.rooms.length]!;
    cluster.servers[room.from]!.to(room.name).emit('l', { t: performance.now() });
    await new Promise((r) => setTimeout(r, 1000 / LATENCY_RATE_PER_S));
  }
  const end = Date.now() + 10_000;
  while (samples.length < count * ROOM_SIZE && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  for (const c of cluster.clients) c.off('l', listener);
  return samples.sort((a, b) => a - b);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

interface Measured {
  deliveriesPerSecond: number;
  cpuPercent: number;
  p50: number;
  p99: number;
  joinMs: number;
}

/**
 * The machine is shared, so one run of each is noise: ROUNDS rounds, the two
 * adapters interleaved within each, SATURATION_RUNS saturation runs per
 * cluster; medians of throughput and join time, percentiles over every latency sample.
 */
async function measureBoth(layout: Layout): Promise<Record<AdapterKind, Measured>> {
  const acc: Record<AdapterKind, { rates: number[]; cpu: number[]; lat: number[]; join: number[] }> = {
    classic: { rates: [], cpu: [], lat: [], join: [] },
    sharded: { rates: [], cpu: [], lat: [], join: [] },
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of round % 2 === 0 ? (['classic', 'sharded'] as const) : (['sharded', 'classic'] as const)) {
      const cluster = await startCluster(kind, layout);
      try {
        acc[kind].join.push(cluster.joinMs);
        await saturation(cluster); // warm-up
        for (let i = 0; i < SATURATION_RUNS; i++) {
          const sat = await saturation(cluster);
          acc[kind].rates.push(sat.deliveriesPerSecond);
          acc[kind].cpu.push(sat.cpuPercent);
        }
        acc[kind].lat.push(...(await latency(cluster)));
      } finally {
        await cluster.close();
      }
    }
  }
  const result = (kind: AdapterKind): Measured => {
    const lat = acc[kind].lat.sort((a, b) => a - b);
    return { deliveriesPerSecond: median(acc[kind].rates), cpuPercent: median(acc[kind].cpu), p50: percentile(lat, 50), p99: percentile(lat, 99), joinMs: median(acc[kind].join) };
  };
  return { classic: result('classic'), sharded: result('sharded') };
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const rows: BenchRow[] = [];
  for (const layout of ['spread', 'local'] as const) {
    const { classic, sharded } = await measureBoth(layout);
    const where = layout === 'spread' ? 'rooms spread over all nodes' : 'each room on one node';
    rows.push(
      {
        metric: `broadcast deliveries/s at saturation, ${NODES} nodes, ${where}`,
        unit: 'deliveries/s',
        pinroom: sharded.deliveriesPerSecond,
        baseline: classic.deliveriesPerSecond,
        baselineName: 'classic @socket.io/redis-adapter (PUBLISH/PSUBSCRIBE)',
        ratio: round2(sharded.deliveriesPerSecond / classic.deliveriesPerSecond),
        cpu: { server: sharded.cpuPercent },
        note: `pinroom column: sharded adapter (SPUBLISH/SSUBSCRIBE, dynamic); classic used ${classic.cpuPercent}% CPU, sharded ${sharded.cpuPercent}% (one process: servers and clients)`,
      },
      {
        metric: `delivery latency p50 at ${LATENCY_RATE_PER_S} broadcasts/s, ${where}`,
        unit: 'ms',
        pinroom: round2(sharded.p50),
        baseline: round2(classic.p50),
        baselineName: 'classic @socket.io/redis-adapter',
        ratio: round2(classic.p50 / sharded.p50),
        lowerIsBetter: true,
      },
      {
        metric: `delivery latency p99 at ${LATENCY_RATE_PER_S} broadcasts/s, ${where}`,
        unit: 'ms',
        pinroom: round2(sharded.p99),
        baseline: round2(classic.p99),
        baselineName: 'classic @socket.io/redis-adapter',
        ratio: round2(classic.p99 / sharded.p99),
        lowerIsBetter: true,
      },
      {
        metric: `connect and join ${NODES * CLIENTS_PER_NODE} sockets (3 groups each), ${where}`,
        unit: 'ms',
        pinroom: Math.round(sharded.joinMs),
        baseline: Math.round(classic.joinMs),
        baselineName: 'classic @socket.io/redis-adapter',
        ratio: round2(classic.joinMs / sharded.joinMs),
        lowerIsBetter: true,
        note: 'the sharded adapter SSUBSCRIBEs one channel per new room (user, session and pinroom room groups)',
      },
    );
  }
  return { scenario: 'adapter', rows };
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
