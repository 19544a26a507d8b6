/**
 * Many rooms: the classroom shape. R rooms (250, then 500), each with a host
 * and 4 members who joined by PIN; all 5 sockets of a room subscribe to its
 * feed, and the hosts publish 100-byte `chat.message` entries through
 * `feed:publish` (pinroom) or `publish` → `io.to(room).emit` (bare Socket.IO).
 *
 * - Highest publish rate (all rooms together) with ≥ 99 % of the deliveries
 *   in the window and p99 publish→delivery ≤ 50 ms, found by search
 *   (bench/lib/rooms-load.ts), in ROUNDS rounds that alternate the targets;
 *   the median round counts. Server CPU per entry for both, and Redis CPU per
 *   entry for pinroom, at the highest passing rate.
 * - Publish→delivery latency at 2,000 publishes/s over 250 rooms, samples
 *   pooled over LATENCY_ROUNDS alternating rounds.
 *
 * pinroom gets its own redis-server (so that its CPU is pinroom's only); every
 * server is pinned to the server core, the load to the load core.
 *
 *   taskset -c 1 node --import tsx bench/scenarios/rooms.ts
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RoomView } from '../../shared/schemas.ts';
import { startRedisServer, type OwnedRedis } from '../../tests/support/redis-server.ts';
import { connectMany, type EioSocket } from '../lib/eio-client.ts';
import { forEachLimit, okData, promoteToHosts, requestOk, signInGuests, startPinroom } from '../lib/pinroom.ts';
import { median, round2, sleep, startPinnedServer, type Pinned } from '../lib/procs.ts';
import { createRoomsDriver, searchMaxRate, type ProbeResult, type RoomsTarget } from '../lib/rooms-load.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const SIZES = [250, 500];
const MEMBERS = 4;
/** Sockets per room that receive each entry: the host and its members. */
const RECEIVERS = MEMBERS + 1;
const ROUNDS = Number(process.env.BENCH_ROOMS_ROUNDS ?? 3);
const LATENCY_RATE = 2000;
const LATENCY_ROOMS = 250;
const LATENCY_ROUNDS = 2;

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
  { nodes = 1, cores, nodeOf = () => 0 }: { nodes?: number; cores?: number[]; nodeOf?: (r: number, k: number) => number } = {},
): Promise<RoomsTarget & { redis: OwnedRedis }> {
  const redis = await startRedisServer();
  const pr = await startPinroom({ REDIS_URL: redis.url }, [], cores?.[0]);
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
      name: 'pinroom',
      pids: servers.map((s) => s.pid),
      redisPid: await redisPid(redis),
      redis,
      publishers: hostIndexes.map((i) => sockets[i]!),
      receivers: sockets,
      encode: (r, seq, text) => `${heads[r]}${text}"},"clientMsgId":"b${seq}"}]`,
      async close() {
        for (const s of sockets) s?.close();
        for (const s of extra) await s.stop();
        await pr.cleanup();
        await redis.dispose();
      },
    };
  } catch (err) {
    for (const s of extra) await s.stop();
    await pr.cleanup();
    await redis.dispose();
    throw err;
  }
}

async function bareRooms(rooms: number): Promise<RoomsTarget> {
  const server = await startPinnedServer('bench/baselines/socketio-server.ts', {});
  try {
    const sockets = await connectMany(server.url, rooms * RECEIVERS, { concurrency: 100 });
    await forEachLimit(rooms * RECEIVERS, 100, async (i) => {
      okData(await sockets[i]!.request('join', `room-${Math.floor(i / RECEIVERS)}`), 'join');
    });
    await sleep(500);
    return {
      name: 'socket.io',
      pids: [server.pid],
      publishers: Array.from({ length: rooms }, (_, r) => sockets[r * RECEIVERS]!),
      receivers: sockets,
      encode: (r, _seq, text) => `["publish",{"room":"room-${r}","type":"chat.message","payload":{"text":"${text}"}}]`,
      async close() {
        for (const s of sockets) s.close();
        await server.stop();
      },
    };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

const summary = (r: ProbeResult | undefined) =>
  r ? `${r.rate}/s: ${Math.round(r.deliveredRatio * 1000) / 10}% delivered, p50 ${r.p50} ms, p99 ${r.p99} ms, server ${r.serverCpu}% (${r.serverUsPerEntry} µs/entry)${r.redisCpu !== undefined ? `, redis ${r.redisCpu}% (${r.redisUsPerEntry} µs/entry)` : ''}, client ${r.clientCpu}%` : 'none passed';

const scenario: Scenario = async (): Promise<BenchResult> => {
  const rows: BenchRow[] = [];
  const bareName = 'bare Socket.IO 4.8 (io.to(room).emit), same criteria';
  for (const size of SIZES) {
    const targets: RoomsTarget[] = [];
    try {
      targets.push(await pinroomRooms(size));
      targets.push(await bareRooms(size));
      const probes = targets.map(createRoomsDriver);
      const rounds = targets.map(() => [] as { rate: number; best: ProbeResult | undefined }[]);
      for (let round = 0; round < ROUNDS; round++) {
        for (let t = 0; t < targets.length; t++) {
          const previous = rounds[t]!.at(-1)?.rate;
          const found = await searchMaxRate(probes[t]!, {
            receiversPerRoom: RECEIVERS,
            start: 1000,
            ...(previous ? { around: previous } : {}),
            log: (r) => process.stderr.write(`rooms ${size} ${targets[t]!.name} probe ${summary(r)}${r.pass ? '' : ' ✗'}\n`),
          });
          rounds[t]!.push(found);
          process.stderr.write(`rooms ${size} ${targets[t]!.name} round ${round + 1}: max ${found.rate}/s (${summary(found.best)})\n`);
        }
      }
      const [pin, bare] = rounds.map((r) => median(r, (x) => x.rate)) as [(typeof rounds)[0][0], (typeof rounds)[0][0]];
      rows.push({
        metric: `highest publish rate with ≥ 99% delivered and p99 ≤ 50 ms, ${size} rooms × ${MEMBERS} members + host, 100-byte entries`,
        unit: 'publishes/s',
        pinroom: pin.rate,
        baseline: bare.rate,
        baselineName: bareName,
        ratio: round2(pin.rate / bare.rate),
        target: 0.8,
        cpu: { server: pin.best?.serverCpu ?? 0, client: pin.best?.clientCpu ?? 0 },
        note:
          `median of ${ROUNDS} alternating rounds (pinroom ${rounds[0]!.map((r) => r.rate).join(', ')}; bare ${rounds[1]!.map((r) => r.rate).join(', ')}); ` +
          `at the median rate: pinroom ${summary(pin.best)}; bare ${summary(bare.best)}`,
      });
      if (size === LATENCY_ROOMS) {
        const pooled = targets.map(() => [] as Float64Array[]);
        const cpu = targets.map(() => [] as ProbeResult[]);
        for (let round = 0; round < LATENCY_ROUNDS; round++) {
          for (let t = 0; t < targets.length; t++) {
            const r = await probes[t]!(LATENCY_RATE, { receiversPerRoom: RECEIVERS, measureMs: 4000, onSamples: (s) => pooled[t]!.push(s) });
            cpu[t]!.push(r);
            process.stderr.write(`rooms latency ${targets[t]!.name} round ${round + 1}: ${summary(r)}\n`);
          }
        }
        const percentiles = pooled.map((chunks) => {
          const all = Float64Array.from(chunks.flatMap((c) => [...c])).sort();
          const at = (p: number) => Math.round(all[Math.min(all.length - 1, Math.floor((p / 100) * all.length))]! * 100) / 100;
          return { p50: at(50), p99: at(99), n: all.length };
        });
        const [lp, lb] = percentiles as [(typeof percentiles)[0], (typeof percentiles)[0]];
        for (const p of ['p50', 'p99'] as const) {
          rows.push({
            metric: `publish→delivery latency ${p} at ${LATENCY_RATE} publishes/s over ${LATENCY_ROOMS} rooms (${RECEIVERS} receivers each)`,
            unit: 'ms',
            pinroom: lp[p],
            baseline: lb[p],
            baselineName: 'bare Socket.IO 4.8 io.to(room).emit',
            ratio: round2(lb[p] / lp[p]),
            lowerIsBetter: true,
            // Target: within 1.5 × bare, i.e. bare / pinroom ≥ 1 / 1.5.
            target: round2(1 / 1.5),
            ...(p === 'p50' ? { cpu: { server: cpu[0]![0]!.serverCpu, client: cpu[0]![0]!.clientCpu } } : {}),
            note: `${lp.n} / ${lb.n} samples over ${LATENCY_ROUNDS} alternating rounds; ${p} is ${round2(lp[p] / lb[p])}× bare (target ≤ 1.5×)` +
              (p === 'p50' ? `; server CPU per round: pinroom ${cpu[0]!.map((r) => `${r.serverCpu}% (${r.serverUsPerEntry} µs/entry, redis ${r.redisUsPerEntry} µs/entry)`).join(', ')}; bare ${cpu[1]!.map((r) => `${r.serverCpu}% (${r.serverUsPerEntry} µs/entry)`).join(', ')}` : ''),
          });
        }
      }
    } finally {
      for (const target of targets) await target.close();
    }
  }
  return { scenario: 'many rooms', rows };
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
