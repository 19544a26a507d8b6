/**
 * Feed delivery across nodes, and with a subscriber that stops reading.
 *
 * - Cross-node: two pinroom nodes on one Redis (their own redis-server), the
 *   first pinned to the server core and the second to the load core (this
 *   machine has two cores and no second machine: the load generator shares the
 *   second node's core). CROSS_ROOMS rooms of a host and 4 members; each
 *   room's sockets are split over both nodes (the host on one, two members on
 *   each) and hosts publish on both. Highest publish rate with ≥ 99 % delivered
 *   and p99 ≤ 50 ms, deliveries per second there, and Redis commands per entry
 *   per node (INFO commandstats). Baseline: two bare Socket.IO nodes sharing
 *   rooms through the classic Redis adapter, pinned and split the same way.
 * - Slow consumer: one pinroom node (server core), SLOW_ROOMS rooms publishing
 *   1 KB entries at SLOW_RATE per second in total; one more socket joins every
 *   room, subscribes, and stops reading its socket. The memory the node still
 *   holds at the end (heap and external after a full GC, the slow socket still
 *   connected) and its peak RSS, against bare Socket.IO with the same
 *   non-reading socket, each also without it; and the other subscribers' p99
 *   with the slow socket against without it (same node, same load).
 *
 *   taskset -c 1 node --import tsx bench/scenarios/delivery.ts
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import type { RoomView } from '../../shared/schemas.ts';
import { tempDirPrefix } from '../../tests/support/leftovers.ts';
import { EioSocket } from '../lib/eio-client.ts';
import { okData, requestOk, signInGuests } from '../lib/pinroom.ts';
import { LOAD_CORE, memoryAfterGc, memoryProbeArgs, round2, rssBytes, SERVER_CORE, sleep } from '../lib/procs.ts';
import { bareRooms, createRoomsDriver, pinroomRooms, RECEIVERS, searchMaxRate, summary, type ProbeResult, type RoomsTarget } from '../lib/rooms-load.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const CROSS_ROOMS = 250;
const SLOW_ROOMS = 50;
const SLOW_RATE = 1000;
const SLOW_MS = 30_000;
const SLOW_ENTRY_BYTES = 1000;
/** Socket k of room r: the host of even rooms on node 0 and of odd rooms on node 1; members 1-2 on node 0, 3-4 on node 1. */
const split = (r: number, k: number) => (k === 0 ? r % 2 : k <= 2 ? 0 : 1);

/**
 * Count the commands clients send to Redis while `fn` runs (MONITOR, which also
 * shows the calls scripts make inside Redis: those are counted apart).
 */
async function countCommands<T>(url: string, fn: () => Promise<T>): Promise<{ result: T; sent: number; inScripts: number }> {
  const client = new Redis(url);
  const monitor = await client.monitor();
  let sent = 0;
  let inScripts = 0;
  monitor.on('monitor', (_time: string, _args: string[], source: string) => {
    if (source === 'lua') inScripts++;
    else sent++;
  });
  try {
    const result = await fn();
    return { result, sent, inScripts };
  } finally {
    monitor.disconnect();
    client.disconnect();
  }
}

async function crossNode(): Promise<BenchRow[]> {
  const cores = [SERVER_CORE, LOAD_CORE];
  const targets: RoomsTarget[] = [];
  try {
    const pin = await pinroomRooms(CROSS_ROOMS, { nodes: 2, cores, nodeOf: split });
    targets.push(pin, await bareRooms(CROSS_ROOMS, { nodes: 2, cores, nodeOf: split }));
    const found: { rate: number; best: ProbeResult | undefined }[] = [];
    let commandsPerEntryPerNode = 0;
    let scriptCallsPerEntry = 0;
    for (const target of targets) {
      const probe = createRoomsDriver(target);
      const result = await searchMaxRate(probe, {
        receiversPerRoom: RECEIVERS,
        start: 1000,
        log: (r) => process.stderr.write(`delivery cross-node ${target.name} probe ${summary(r)}${r.pass ? '' : ' ✗'}\n`),
      });
      found.push(result);
      if (target === pin && result.rate > 0) {
        // Redis commands per entry per node, at the rate found (MONITOR slows Redis: a separate probe).
        const counted = await countCommands(pin.redis.url, () => probe(result.rate, { receiversPerRoom: RECEIVERS, warmupMs: 0 }));
        const entries = Math.max(1, counted.result.published);
        commandsPerEntryPerNode = round2(counted.sent / entries / 2);
        scriptCallsPerEntry = round2(counted.inScripts / entries);
      }
    }
    const [p, b] = found as [(typeof found)[0], (typeof found)[0]];
    const deliveries = (x: typeof p) => Math.round(x.rate * RECEIVERS * (x.best?.deliveredRatio ?? 0));
    return [
      {
        metric: `cross-node: highest publish rate with ≥ 99% delivered and p99 ≤ 50 ms, 2 nodes, ${CROSS_ROOMS} rooms split over both, publishers on both`,
        unit: 'publishes/s',
        pinroom: p.rate,
        baseline: b.rate,
        baselineName: 'two bare Socket.IO 4.8 nodes, classic @socket.io/redis-adapter',
        ratio: round2(p.rate / b.rate),
        cpu: { server: p.best?.serverCpu ?? 0, client: p.best?.clientCpu ?? 0 },
        note: `node 1 pinned to core ${SERVER_CORE}, node 2 to core ${LOAD_CORE} with the load generator (no second machine); at the highest rate: pinroom ${summary(p.best)}; bare ${summary(b.best)}`,
      },
      {
        metric: 'cross-node: deliveries/s at that rate (5 sockets per room)',
        unit: 'deliveries/s',
        pinroom: deliveries(p),
        baseline: deliveries(b),
        baselineName: 'two bare Socket.IO 4.8 nodes, classic @socket.io/redis-adapter',
        ratio: round2(deliveries(p) / Math.max(1, deliveries(b))),
        note: `pinroom: ${commandsPerEntryPerNode} Redis commands sent per entry per node (MONITOR over one probe at ${p.rate}/s, divided by entries and by 2 nodes: the append script, and the archive's share of its take, claim, XRANGE, global copy and commit scripts per room visit; nothing per subscriber), and ${scriptCallsPerEntry} calls made inside those scripts per entry`,
      },
    ];
  } finally {
    for (const target of targets) await target.close();
  }
}

interface SlowRun {
  p99: number;
  p50: number;
  /** Highest RSS during the run minus RSS at its start, bytes. */
  peakRssGrowth: number;
  /** Heap and external memory after a full GC at the end (the slow socket still connected) minus the same at the start, bytes. */
  retained: number;
  cutOff: boolean;
  result: ProbeResult;
}

/** Join a non-reading socket to every room (pinroom: room:join + feed:subscribe; bare: join), then stop reading. */
async function addSlowConsumer(target: RoomsTarget & { url: string; rooms?: RoomView[]; token?: string }): Promise<EioSocket> {
  const socket = await EioSocket.connect(target.url, target.token ? { auth: { token: target.token } } : {});
  if (target.rooms) {
    for (const room of target.rooms) {
      await requestOk(socket, 'room:join', { pin: room.pin });
      await requestOk(socket, 'feed:subscribe', { roomId: room.id });
    }
  } else {
    for (let r = 0; r < target.publishers.length; r++) okData(await socket.request('join', `room-${r}`), 'join');
  }
  (socket.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  return socket;
}

const retainedNow = async (pid: number, file: string) => {
  const m = await memoryAfterGc(pid, file);
  return m.heapUsed + m.external;
};

async function slowRun(target: RoomsTarget & { url: string; output?: () => string }, slow: boolean, memoryFile: string, extra: { rooms?: RoomView[]; token?: string }): Promise<SlowRun> {
  const probe = createRoomsDriver(target, { entryBytes: SLOW_ENTRY_BYTES });
  const pid = target.pids[0]!;
  const retainedBefore = await retainedNow(pid, memoryFile);
  const socket = slow ? await addSlowConsumer({ ...target, ...extra }) : undefined;
  const start = rssBytes(pid);
  let peak = start;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 100);
  const logBefore = target.output?.().length ?? 0;
  const result = await probe(SLOW_RATE, { receiversPerRoom: RECEIVERS, warmupMs: 1000, measureMs: SLOW_MS, maxP99Ms: Number.POSITIVE_INFINITY });
  clearInterval(sampler);
  const retained = (await retainedNow(pid, memoryFile)) - retainedBefore;
  socket?.close();
  const cutOff = /socket not reading its feed/.test(target.output?.().slice(logBefore) ?? '');
  process.stderr.write(
    `delivery slow consumer ${target.name} ${slow ? 'with' : 'without'}: ${summary(result)}, rss ${Math.round(start / 1e6)} → peak ${Math.round(peak / 1e6)} MB, retained after GC ${Math.round(retained / 1e6)} MB${slow ? `, cut off: ${cutOff}` : ''}\n`,
  );
  await sleep(1000);
  return { p99: result.p99, p50: result.p50, peakRssGrowth: peak - start, retained, cutOff, result };
}

async function slowConsumer(): Promise<BenchRow[]> {
  const memoryFile = join(tmpdir(), `${tempDirPrefix()}memory.json`);
  const probeEnv = { BENCH_MEMORY_FILE: memoryFile };
  const pin = await pinroomRooms(SLOW_ROOMS, { env: probeEnv, nodeArgs: memoryProbeArgs() });
  let withSlow: SlowRun, without: SlowRun, bareSlow: SlowRun, bareWithout: SlowRun;
  try {
    // Not a "Bench <i>": the receivers of the run before may still be leaving the rooms it joins.
    const [slowSession] = await signInGuests(pin.url, 1, 1, 'Slow reader');
    const extra = { rooms: pin.rooms, token: slowSession!.accessToken };
    without = await slowRun(pin, false, memoryFile, extra);
    withSlow = await slowRun(pin, true, memoryFile, extra);
  } finally {
    await pin.close();
  }
  const bare = await bareRooms(SLOW_ROOMS, { env: probeEnv, nodeArgs: memoryProbeArgs() });
  try {
    bareWithout = await slowRun(bare, false, memoryFile, {});
    bareSlow = await slowRun(bare, true, memoryFile, {});
  } finally {
    await bare.close();
    rmSync(memoryFile, { force: true });
  }
  const mb = (n: number) => round2(n / 1e6);
  return [
    {
      metric: `slow consumer: memory the node still holds after ${SLOW_MS / 1000} s at ${SLOW_RATE} entries/s of ${SLOW_ENTRY_BYTES} bytes over ${SLOW_ROOMS} rooms, with one subscriber of every room not reading (heap + external after a full GC, end minus start)`,
      unit: 'MB',
      pinroom: mb(withSlow.retained),
      baseline: mb(bareSlow.retained),
      baselineName: 'bare Socket.IO 4.8 with the same non-reading socket',
      ratio: round2(Math.max(bareSlow.retained, 1e5) / Math.max(withSlow.retained, 1e5)),
      lowerIsBetter: true,
      goal: { text: 'flat: cut off at SOCKET_MAX_BUFFERED_BYTES', met: withSlow.cutOff && withSlow.retained < without.retained + 8e6 },
      note:
        `without the slow socket: pinroom ${mb(without.retained)} MB, bare ${mb(bareWithout.retained)} MB; peak RSS growth with it: pinroom ${mb(withSlow.peakRssGrowth)} MB, bare ${mb(bareSlow.peakRssGrowth)} MB ` +
        `(without: ${mb(without.peakRssGrowth)}, ${mb(bareWithout.peakRssGrowth)}); pinroom cut the socket off: ${withSlow.cutOff}`,
    },
    {
      metric: 'slow consumer: the other subscribers\' publish→delivery p99 with the non-reading subscriber, against without it',
      unit: 'ms',
      pinroom: withSlow.p99,
      baseline: without.p99,
      baselineName: 'pinroom, same load, no slow subscriber',
      ratio: round2(without.p99 / withSlow.p99),
      lowerIsBetter: true,
      target: 0.8,
      note: `p50 ${withSlow.p50} ms with, ${without.p50} ms without; with: ${summary(withSlow.result)}; without: ${summary(without.result)}; bare p99 ${bareSlow.p99} ms with, ${bareWithout.p99} ms without`,
    },
  ];
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const rows = [...(await slowConsumer()), ...(await crossNode())];
  return { scenario: 'delivery', rows };
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
