/**
 * Load of many small rooms: each room's host publishes 100-byte entries at an
 * open-loop rate (spread round-robin over the rooms), every member socket
 * (the host included) receives them, and each receipt's latency is taken from
 * the publish to the frame's arrival (one clock: the load generator's).
 *
 * A probe runs at a fixed rate: a warm-up, a measured window, then a short
 * grace. An entry published in the window counts as delivered to a socket
 * when its frame arrives before the grace ends. `searchMaxRate` finds the
 * highest rate that passes: at least 99 % delivered and p99 ≤ 50 ms, with no
 * publish refused.
 */
import type { RoomView } from '../../shared/schemas.ts';
import { startRedisCluster } from '../../tests/support/redis-cluster.ts';
import { startRedisServer, type OwnedRedis } from '../../tests/support/redis-server.ts';
import { connectMany, type EioSocket } from './eio-client.ts';
import { forEachLimit, okData, promoteToHosts, requestOk, signInGuests, startPinroom } from './pinroom.ts';
import { cpuMs, sleep, startPinnedServer, type Pinned } from './procs.ts';

/** Sockets of a room that receive its entries: the host and 4 members, all subscribed. */
export const RECEIVERS = 5;

const MARK = 0x7e; // '~' brackets the sequence number in the entry text
const textOf = (seq: number, bytes: number) => `~${seq}~`.padEnd(bytes, 'x');

export interface RoomsTarget {
  name: string;
  /** The first node's URL. */
  url: string;
  /** What the first node printed (pinroom). */
  output?(): string;
  /** Server processes whose CPU counts (one per node). */
  pids: number[];
  /** Redis server process, when the target uses one (its CPU is reported per entry). */
  redisPid?: number;
  /** The publishing socket of each room. */
  publishers: EioSocket[];
  /** Every socket that receives a room's entries (publishers included when they subscribe). */
  receivers: EioSocket[];
  /** `["event",payload]` of one publish of `text` into room `r`. */
  encode(r: number, seq: number, text: string): string;
  close(): Promise<void>;
}

export interface ProbeResult {
  rate: number;
  published: number;
  expected: number;
  delivered: number;
  deliveredRatio: number;
  p50: number;
  p99: number;
  errors: number;
  /** Server CPU (all pids), percent of one core, and µs per published entry. */
  serverCpu: number;
  serverUsPerEntry: number;
  redisCpu?: number;
  redisUsPerEntry?: number;
  clientCpu: number;
  pass: boolean;
}

export interface ProbeOptions {
  warmupMs?: number;
  measureMs?: number;
  graceMs?: number;
  /** Receivers per room that must get each entry (sockets that subscribed to it). */
  receiversPerRoom: number;
  /** Pass criteria. @default 0.99 and 50 ms */
  minDelivered?: number;
  maxP99Ms?: number;
  /** Keep every latency sample (for pooling across rounds). */
  onSamples?: (samples: Float64Array) => void;
}

const percentile = (sorted: Float64Array, p: number) => (sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);

/** Sequence numbers of this process: unique across drivers, so no publish repeats an earlier `clientMsgId`. */
let seq = 0;

/** Attach the receipt counters of a target once; returns the probe function. Entries carry `entryBytes` of text (default 100). */
export function createRoomsDriver(target: RoomsTarget, { entryBytes = 100 }: { entryBytes?: number } = {}) {
  let sentAt = new Float64Array(1 << 20);
  /** Measured sequence numbers: [from, to). */
  let from = Number.MAX_SAFE_INTEGER;
  let to = Number.MAX_SAFE_INTEGER;
  let samples: number[] = [];
  let errors = 0;
  let counting = false;

  for (const socket of target.receivers) {
    socket.watch('feed:entry', (data) => {
      const i = data.indexOf(MARK);
      if (i < 0) return; // an entry the server made (member.joined, ...), not a published one
      const j = data.indexOf(MARK, i + 1);
      const n = Number(data.toString('latin1', i + 1, j));
      if (!counting || n < from || n >= to) return;
      samples.push(performance.now() - sentAt[n]!);
    });
  }
  const onAck = (args: unknown[]) => {
    if ((args[0] as { ok?: boolean } | undefined)?.ok !== true) {
      errors++;
      if (errors <= 3) process.stderr.write(`${target.name}: publish refused ${JSON.stringify(args[0])}\n`);
    }
  };

  function send(r: number): void {
    const n = seq++;
    while (n >= sentAt.length) {
      const grown = new Float64Array(sentAt.length * 2);
      grown.set(sentAt);
      sentAt = grown;
    }
    sentAt[n] = performance.now();
    target.publishers[r]!.requestRaw(target.encode(r, n, textOf(n, entryBytes)), onAck);
  }

  /** Publish at `rate` per second (all rooms together) for `ms`, rooms in turn. */
  async function run(rate: number, ms: number, roomCursor: { next: number }): Promise<number> {
    const rooms = target.publishers.length;
    const start = performance.now();
    let sent = 0;
    for (;;) {
      const elapsed = performance.now() - start;
      if (elapsed >= ms) break;
      const due = Math.floor((elapsed / 1000) * rate);
      while (sent < due) {
        send(roomCursor.next);
        roomCursor.next = (roomCursor.next + 1) % rooms;
        sent++;
      }
      await sleep(2);
    }
    return sent;
  }

  return async function probe(rate: number, options: ProbeOptions): Promise<ProbeResult> {
    const { warmupMs = 1000, measureMs = 2500, graceMs = 500, receiversPerRoom, minDelivered = 0.99, maxP99Ms = 50 } = options;
    const cursor = { next: 0 };
    samples = [];
    errors = 0;
    counting = false;
    await run(rate, warmupMs, cursor);
    from = seq;
    to = Number.MAX_SAFE_INTEGER;
    counting = true;
    const serverStart = target.pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
    const redisStart = target.redisPid ? cpuMs(target.redisPid) : 0;
    const clientStart = process.cpuUsage();
    const t0 = performance.now();
    const published = await run(rate, measureMs, cursor);
    const ms = performance.now() - t0;
    const serverMs = target.pids.reduce((sum, pid) => sum + cpuMs(pid), 0) - serverStart;
    const redisMs = target.redisPid ? cpuMs(target.redisPid) - redisStart : 0;
    const client = process.cpuUsage(clientStart);
    to = seq;
    await sleep(graceMs);
    counting = false;
    const sorted = Float64Array.from(samples).sort();
    options.onSamples?.(sorted);
    const expected = published * receiversPerRoom;
    const deliveredRatio = expected === 0 ? 0 : sorted.length / expected;
    const p99 = percentile(sorted, 99);
    const result: ProbeResult = {
      rate,
      published,
      expected,
      delivered: sorted.length,
      deliveredRatio: Math.round(deliveredRatio * 10_000) / 10_000,
      p50: Math.round(percentile(sorted, 50) * 100) / 100,
      p99: Math.round(p99 * 100) / 100,
      errors,
      serverCpu: Math.round((serverMs / ms) * 100),
      serverUsPerEntry: Math.round((serverMs * 1000) / Math.max(1, published)),
      clientCpu: Math.round(((client.user + client.system) / 1000 / ms) * 100),
      pass: errors === 0 && deliveredRatio >= minDelivered && p99 <= maxP99Ms,
    };
    if (target.redisPid) {
      result.redisCpu = Math.round((redisMs / ms) * 100);
      result.redisUsPerEntry = Math.round((redisMs * 1000) / Math.max(1, published));
    }
    // Let what is still in flight land before the next probe.
    await sleep(700);
    return result;
  };
}

export type RoomsProbe = ReturnType<typeof createRoomsDriver>;

/**
 * The highest rate that passes, to about `resolution` (relative): doubling
 * from `start` until a probe fails, then bisecting. With `around` (the answer
 * of an earlier round), it starts there and steps by `resolution` instead.
 */
export async function searchMaxRate(
  probe: RoomsProbe,
  options: ProbeOptions & { start?: number; around?: number; resolution?: number; maxRate?: number; log?: (r: ProbeResult) => void },
): Promise<{ rate: number; best: ProbeResult | undefined; probes: ProbeResult[] }> {
  const { start = 1000, resolution = 0.08, maxRate = 200_000, log } = options;
  const probes: ProbeResult[] = [];
  const at = async (rate: number) => {
    const r = await probe(Math.round(rate), options);
    probes.push(r);
    log?.(r);
    return r;
  };
  let lo = 0;
  let best: ProbeResult | undefined;
  let hi: number;
  if (options.around) {
    let rate = options.around;
    const first = await at(rate);
    if (first.pass) {
      best = first;
      lo = rate;
      for (;;) {
        rate = Math.round(rate * (1 + resolution));
        if (rate > maxRate) return { rate: lo, best, probes };
        const r = await at(rate);
        if (!r.pass) break;
        best = r;
        lo = rate;
      }
    } else {
      for (;;) {
        rate = Math.round(rate * (1 - resolution));
        if (rate < 50) return { rate: 0, best, probes };
        const r = await at(rate);
        if (r.pass) {
          best = r;
          lo = rate;
          break;
        }
      }
    }
    return { rate: lo, best, probes };
  }
  let rate = start;
  for (;;) {
    const r = await at(rate);
    if (!r.pass) {
      hi = rate;
      break;
    }
    best = r;
    lo = rate;
    rate *= 2;
    if (rate > maxRate) return { rate: lo, best, probes };
  }
  while (hi - lo > lo * resolution && hi - lo > 50) {
    const mid = Math.round((lo + hi) / 2);
    const r = await at(mid);
    if (r.pass) {
      best = r;
      lo = mid;
    } else hi = mid;
  }
  return { rate: lo, best, probes };
}

/** Where a target's nodes run and what they are started with. */
export interface TargetOptions {
  /** Server processes sharing the rooms. @default 1 */
  nodes?: number;
  /** Core of each node (`taskset`). @default the server core */
  cores?: number[];
  /** Node of socket k of room r. @default 0 */
  nodeOf?: (r: number, k: number) => number;
  /** Extra environment of the server processes. */
  env?: Record<string, string>;
  /** Extra Node arguments of the first server (pinroom) or of every server (bare). */
  nodeArgs?: string[];
  /** pinroom on its own 3-master Redis Cluster (cluster mode) instead of its own redis-server; Redis CPU is then not reported. */
  redisCluster?: boolean;
}

/** The Redis server's pid (for its CPU time). */
async function redisPid(owned: OwnedRedis): Promise<number> {
  const { Redis } = await import('ioredis');
  const client = new Redis(owned.url);
  const info = await client.info('server');
  client.disconnect();
  return Number(/process_id:(\d+)/.exec(info)![1]);
}

/** R rooms of a host and MEMBERS members on one or more pinroom nodes; `nodeOf(r, k)` places socket k of room r. */
export async function pinroomRooms(
  rooms: number,
  { nodes = 1, cores, nodeOf = () => 0, env = {}, nodeArgs = [], redisCluster = false }: TargetOptions = {},
): Promise<RoomsTarget & { redis: OwnedRedis; rooms: RoomView[] }> {
  const cluster = redisCluster ? await startRedisCluster({ masters: 3 }) : undefined;
  const redis = await startRedisServer();
  const clusterEnv: Record<string, string> = cluster ? { REDIS_CLUSTER_NODES: cluster.seeds } : {};
  const pr = await startPinroom({ ...env, REDIS_URL: redis.url, ...clusterEnv }, nodeArgs, cores?.[0] !== undefined ? { core: cores[0] } : {});
  const extra: Pinned[] = [];
  try {
    for (let n = 1; n < nodes; n++) extra.push(await pr.another(cores?.[n]));
    const servers = [pr.server, ...extra];
    const sessions = await signInGuests(servers[0]!.url, rooms * RECEIVERS, 64);
    const hostIndexes = Array.from({ length: rooms }, (_, r) => r * RECEIVERS);
    const hosts = await promoteToHosts(pr, hostIndexes.map((i) => sessions[i]!));
    hostIndexes.forEach((i, r) => (sessions[i] = hosts[r]!));
    const sockets: EioSocket[] = new Array(rooms * RECEIVERS);
    for (let n = 0; n < servers.length; n++) {
      const mine = [...sessions.keys()].filter((i) => nodeOf(Math.floor(i / RECEIVERS), i % RECEIVERS) === n);
      const opened = await connectMany(servers[n]!.url, mine.length, { concurrency: 100, authFor: (j) => ({ token: sessions[mine[j]!]!.accessToken }) });
      mine.forEach((i, j) => (sockets[i] = opened[j]!));
    }
    const views: RoomView[] = new Array(rooms);
    await forEachLimit(rooms, 50, async (r) => {
      views[r] = okData<{ room: RoomView }>(await sockets[r * RECEIVERS]!.request('room:create', { title: `Room ${r}` }), 'room:create').room;
      await requestOk(sockets[r * RECEIVERS]!, 'feed:subscribe', { roomId: views[r]!.id });
    });
    await forEachLimit(rooms * RECEIVERS, 100, async (i) => {
      if (i % RECEIVERS === 0) return;
      const room = views[Math.floor(i / RECEIVERS)]!;
      await requestOk(sockets[i]!, 'room:join', { pin: room.pin });
      await requestOk(sockets[i]!, 'feed:subscribe', { roomId: room.id });
    });
    await sleep(1500); // presence and member.joined traffic of the joins settles
    const heads = views.map((v) => `["feed:publish",{"roomId":"${v.id}","type":"chat.message","payload":{"text":"`);
    return {
      name: cluster ? 'pinroom on a 3-master Redis Cluster' : 'pinroom',
      url: servers[0]!.url,
      output: () => servers[0]!.output(),
      rooms: views,
      pids: servers.map((s) => s.pid),
      ...(cluster ? {} : { redisPid: await redisPid(redis) }),
      redis,
      publishers: hostIndexes.map((i) => sockets[i]!),
      receivers: sockets,
      encode: (r, seq, text) => `${heads[r]}${text}"},"clientMsgId":"b${seq}"}]`,
      async close() {
        for (const s of sockets) s?.close();
        for (const s of extra) await s.stop();
        await pr.cleanup();
        await redis.dispose();
        await cluster?.stop();
      },
    };
  } catch (err) {
    for (const s of extra) await s.stop();
    await pr.cleanup();
    await redis.dispose();
    await cluster?.stop();
    throw err;
  }
}

/**
 * R rooms of bare Socket.IO with the same sockets per room; with several nodes,
 * they share rooms through the classic Redis adapter on their own redis-server.
 */
export async function bareRooms(
  rooms: number,
  { nodes = 1, cores, nodeOf = () => 0, env = {}, nodeArgs = [] }: TargetOptions = {},
): Promise<RoomsTarget> {
  const redis = nodes > 1 ? await startRedisServer() : undefined;
  const servers: Pinned[] = [];
  try {
    for (let n = 0; n < nodes; n++) {
      servers.push(await startPinnedServer('bench/baselines/socketio-server.ts', { ...env, ...(redis ? { REDIS_URL: redis.url } : {}) }, { nodeArgs, ...(cores?.[n] !== undefined ? { core: cores[n]! } : {}) }));
    }
    const sockets: EioSocket[] = new Array(rooms * RECEIVERS);
    for (let n = 0; n < servers.length; n++) {
      const mine = Array.from({ length: rooms * RECEIVERS }, (_, i) => i).filter((i) => nodeOf(Math.floor(i / RECEIVERS), i % RECEIVERS) === n);
      const opened = await connectMany(servers[n]!.url, mine.length, { concurrency: 100 });
      mine.forEach((i, j) => (sockets[i] = opened[j]!));
    }
    await forEachLimit(rooms * RECEIVERS, 100, async (i) => {
      okData(await sockets[i]!.request('join', `room-${Math.floor(i / RECEIVERS)}`), 'join');
    });
    await sleep(500);
    return {
      name: 'socket.io',
      url: servers[0]!.url,
      pids: servers.map((s) => s.pid),
      ...(redis ? { redisPid: await redisPid(redis) } : {}),
      publishers: Array.from({ length: rooms }, (_, r) => sockets[r * RECEIVERS]!),
      receivers: sockets,
      encode: (r, _seq, text) => `["publish",{"room":"room-${r}","type":"chat.message","payload":{"text":"${text}"}}]`,
      async close() {
        for (const s of sockets) s?.close();
        for (const s of servers) await s.stop();
        await redis?.dispose();
      },
    };
  } catch (err) {
    for (const s of servers) await s.stop();
    await redis?.dispose();
    throw err;
  }
}

/** One line about a probe, for the log and the notes. */
export const summary = (r: ProbeResult | undefined) =>
  r
    ? `${r.rate}/s: ${Math.round(r.deliveredRatio * 1000) / 10}% delivered, p50 ${r.p50} ms, p99 ${r.p99} ms, server ${r.serverCpu}% (${r.serverUsPerEntry} µs/entry)${r.redisCpu !== undefined ? `, redis ${r.redisCpu}% (${r.redisUsPerEntry} µs/entry)` : ''}, client ${r.clientCpu}%`
    : 'none passed';
