/**
 * Fan-out: one room of 1,000 subscribers, 100-byte feed entries.
 *
 * - pinroom: every socket authenticated (guest sign-in, JWT handshake), the
 *   subscribers joined by PIN and subscribed to the room's feed; a host
 *   socket publishes with `feed:publish` (validation, rate-limit guard, the
 *   append script and its live message, delivery as `feed:entry`).
 * - bare Socket.IO (same version, defaults): `publish` → `io.to(room).emit`.
 * - raw ws: `publish` → one pre-built frame written to every client.
 *
 * Deliveries per second at saturation (the publisher keeps a bounded number
 * of entries not yet delivered to everyone in flight), then append-to-receipt
 * latency (publisher send to each subscriber's receipt, one clock) at a fixed
 * 10,000 deliveries per second. pinroom gets its own redis-server (the shared
 * one serves every other test on the machine). The load runs in this process,
 * pinned to the load core; the servers are pinned to the server core. The
 * three servers stay up side by side and are measured in interleaved rounds
 * (median counts).
 *
 *   taskset -c 1 node --import tsx bench/scenarios/fanout.ts
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RoomView } from '../../shared/schemas.ts';
import { startRedisServer } from '../../tests/support/redis-server.ts';
import { connectMany, EioSocket } from '../lib/eio-client.ts';
import { forEachLimit, okData, promoteToHosts, requestOk, signInGuests, startPinroom } from '../lib/pinroom.ts';
import { median, percentile, round2, sleep, startPinnedServer, withCpu } from '../lib/procs.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const SUBSCRIBERS = Number(process.env.BENCH_FANOUT_SUBSCRIBERS ?? 1000);
const ENTRY_BYTES = 100;
/** Entries published but not yet delivered to every subscriber, at most. */
const WINDOW = 64;
const WARMUP_MS = 1000;
const MEASURE_MS = 3000;
/** Saturation windows per target, interleaved across targets; the median counts. */
const ROUNDS = 3;
/** Latency runs per target, interleaved; samples are pooled. */
const LATENCY_ROUNDS = 2;
const LATENCY_RATE = 10_000; // deliveries per second
const LATENCY_MS = 3000;
const MARK = 0x7e; // '~' brackets the sequence number in the entry text

interface Target {
  name: string;
  pid: number;
  subscribers: EioSocket[];
  publisher: EioSocket;
  /** `["event",payload]` of one publish. */
  encode(seq: number, text: string): string;
  /** Wait until the server's background work caused by a measurement is done (pinroom: the feed archive catching up). */
  settle?(): Promise<void>;
  close(): Promise<void>;
}

interface FanoutResult {
  deliveriesPerSecond: number;
  /** Every round's deliveries per second, in order. */
  rounds: number[];
  cpu: { server?: number; client: number };
  p50: number;
  p99: number;
  latencyCpu: { server?: number; client: number };
  samples: number;
  errors: number;
}

const textOf = (seq: number) => {
  const head = `~${seq}~`;
  return head + 'x'.repeat(ENTRY_BYTES - head.length);
};

interface Driver {
  /** Deliveries per second over one saturated window (after a warm-up), then drained. */
  saturate(): Promise<{ perSecond: number; cpu: { server?: number; client: number } }>;
  /** Append-to-receipt latencies at LATENCY_RATE deliveries per second. */
  latency(): Promise<{ samples: number[]; cpu: { server?: number; client: number } }>;
  errors(): number;
}

/** Count a target's deliveries and publish to it, at saturation or at a fixed rate. */
function drive(target: Target): Driver {
  const n = target.subscribers.length;
  let delivered = 0;
  let published = 0;
  let failed = 0;
  let pumping = false;
  let latencyOn = false;
  const sentAt: number[] = [];
  let latencies: number[] = [];

  const onAck = (args: unknown[]) => {
    if ((args[0] as { ok?: boolean } | undefined)?.ok !== true) {
      failed++;
      if (failed <= 3) process.stderr.write(`${target.name}: publish refused ${JSON.stringify(args[0])}\n`);
    }
    if (pumping) pump();
  };
  const send = () => {
    const seq = published++;
    sentAt[seq] = performance.now();
    target.publisher.requestRaw(target.encode(seq, textOf(seq)), onAck);
  };
  function pump(): void {
    while (pumping && published - failed - delivered / n < WINDOW) send();
  }
  for (const sub of target.subscribers) {
    sub.watch('feed:entry', (data) => {
      const i = data.indexOf(MARK);
      if (i < 0) return; // an entry the server made (member.joined, ...), not a published one
      delivered++;
      if (latencyOn) {
        const j = data.indexOf(MARK, i + 1);
        latencies.push(performance.now() - sentAt[Number(data.toString('latin1', i + 1, j))]!);
      } else if (pumping && delivered % n === 0) pump();
    });
  }
  const drain = async () => {
    const end = Date.now() + 10_000;
    while (delivered < (published - failed) * n && Date.now() < end) await sleep(50);
    await sleep(300);
  };

  return {
    async saturate() {
      pumping = true;
      const safety = setInterval(pump, 20);
      pump();
      await sleep(WARMUP_MS);
      const before = delivered;
      const { ms, cpu } = await withCpu(target.pid, () => sleep(MEASURE_MS));
      const perSecond = Math.round(((delivered - before) / ms) * 1000);
      pumping = false;
      clearInterval(safety);
      await drain();
      return { perSecond, cpu };
    },
    async latency() {
      latencies = [];
      latencyOn = true;
      const perSecond = LATENCY_RATE / n;
      const total = Math.round((perSecond * LATENCY_MS) / 1000);
      const { cpu } = await withCpu(target.pid, async () => {
        const start = performance.now();
        for (let k = 0; k < total; k++) {
          const wait = start + (k * 1000) / perSecond - performance.now();
          if (wait > 0) await sleep(wait);
          send();
        }
        const end = Date.now() + 5000;
        while (latencies.length < total * n && Date.now() < end) await sleep(20);
      });
      latencyOn = false;
      await drain();
      return { samples: latencies, cpu };
    },
    errors: () => failed,
  };
}

const ms3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * All three targets stay up (3,000 sockets on the load core) and are measured
 * in turn, ROUNDS times, so that a slow moment of the machine (Redis or
 * PostgreSQL scheduled onto the server core, another process) does not land on
 * one target only; the median round counts. Latency runs alternate the same way
 * and pool their samples.
 */
async function measureAll(targets: Target[]): Promise<FanoutResult[]> {
  const drivers = targets.map(drive);
  const rounds = targets.map(() => [] as { perSecond: number; cpu: { server?: number; client: number } }[]);
  const samples = targets.map(() => [] as number[]);
  const latencyCpu = targets.map(() => [] as { server?: number; client: number }[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (let t = 0; t < targets.length; t++) {
      const r = await drivers[t]!.saturate();
      await targets[t]!.settle?.();
      rounds[t]!.push(r);
      process.stderr.write(`fanout ${targets[t]!.name} round ${round + 1}: ${r.perSecond} deliveries/s, cpu ${JSON.stringify(r.cpu)}\n`);
    }
  }
  for (let round = 0; round < LATENCY_ROUNDS; round++) {
    for (let t = 0; t < targets.length; t++) {
      const l = await drivers[t]!.latency();
      await targets[t]!.settle?.();
      samples[t]!.push(...l.samples);
      latencyCpu[t]!.push(l.cpu);
    }
  }
  return targets.map((target, t) => {
    const best = median(rounds[t]!, (r) => r.perSecond);
    const sorted = Float64Array.from(samples[t]!).sort();
    const result: FanoutResult = {
      deliveriesPerSecond: best.perSecond,
      rounds: rounds[t]!.map((r) => r.perSecond),
      cpu: best.cpu,
      p50: ms3(percentile(sorted, 50)),
      p99: ms3(percentile(sorted, 99)),
      latencyCpu: latencyCpu[t]![0]!,
      samples: sorted.length,
      errors: drivers[t]!.errors(),
    };
    process.stderr.write(`fanout ${target.name}: ${JSON.stringify(result)}\n`);
    return result;
  });
}

async function pinroomTarget(): Promise<Target> {
  // Its own redis-server: the shared one serves every other test and benchmark on the machine.
  const redis = await startRedisServer();
  const pr = await startPinroom({ REDIS_URL: redis.url });
  try {
    const url = pr.server.url;
    const sessions = await signInGuests(url, SUBSCRIBERS + 1);
    const [host] = await promoteToHosts(pr, sessions.slice(0, 1));
    const publisher = await EioSocket.connect(url, { auth: { token: host!.accessToken } });
    const { room } = okData<{ room: RoomView }>(await publisher.request('room:create', { title: 'Fan-out bench', maxMembers: SUBSCRIBERS + 1 }), 'room:create');
    const subscribers = await connectMany(url, SUBSCRIBERS, { concurrency: 100, authFor: (i) => ({ token: sessions[i + 1]!.accessToken }) });
    await forEachLimit(SUBSCRIBERS, 50, async (i) => {
      await requestOk(subscribers[i]!, 'room:join', { pin: room.pin });
      await requestOk(subscribers[i]!, 'feed:subscribe', { roomId: room.id });
    });
    await sleep(1500); // presence and member.joined traffic of the joins settles
    const head = `["feed:publish",{"roomId":"${room.id}","type":"chat.message","payload":{"text":"`;
    return {
      name: 'pinroom',
      pid: pr.server.pid,
      subscribers,
      publisher,
      encode: (seq, text) => `${head}${text}"},"clientMsgId":"b${seq}"}]`,
      // The archive worker copies every entry to PostgreSQL in the background; let it
      // catch up (pinroom_feed_archive_pending_rooms on /metrics) before another server is measured.
      async settle() {
        const end = Date.now() + 60_000;
        while (Date.now() < end) {
          const text = await (await fetch(`${url}/metrics`)).text();
          const lag = Number(/^pinroom_feed_archive_pending_rooms (\S+)$/m.exec(text)?.[1] ?? 0);
          if (!(lag > 0)) return;
          await sleep(250);
        }
      },
      async close() {
        for (const s of [publisher, ...subscribers]) s.close();
        await pr.cleanup();
        await redis.dispose();
      },
    };
  } catch (err) {
    await pr.cleanup();
    await redis.dispose();
    throw err;
  }
}

async function baselineTarget(name: string, script: string): Promise<Target> {
  const server = await startPinnedServer(script, {});
  try {
    const [publisher, ...subscribers] = await connectMany(server.url, SUBSCRIBERS + 1, { concurrency: 100 });
    await forEachLimit(SUBSCRIBERS, 100, async (i) => {
      okData(await subscribers[i]!.request('join', 'bench'), 'join');
    });
    await sleep(500);
    return {
      name,
      pid: server.pid,
      subscribers,
      publisher: publisher!,
      encode: (_seq, text) => `["publish",{"room":"bench","type":"chat.message","payload":{"text":"${text}"}}]`,
      async close() {
        for (const s of [publisher!, ...subscribers]) s.close();
        await server.stop();
      },
    };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const targets: Target[] = [];
  let pinroom: FanoutResult, bare: FanoutResult, raw: FanoutResult;
  try {
    targets.push(await pinroomTarget());
    targets.push(await baselineTarget('socket.io', 'bench/baselines/socketio-server.ts'));
    targets.push(await baselineTarget('ws', 'bench/baselines/ws-server.ts'));
    [pinroom, bare, raw] = (await measureAll(targets)) as [FanoutResult, FanoutResult, FanoutResult];
  } finally {
    for (const target of targets) await target.close();
  }
  const metric = `deliveries/s at saturation, 1 room × ${SUBSCRIBERS} subscribers, ${ENTRY_BYTES}-byte entries`;
  const bareName = 'bare Socket.IO 4.8 io.to(room).emit';
  const rows: BenchRow[] = [
    {
      metric,
      unit: 'deliveries/s',
      pinroom: pinroom.deliveriesPerSecond,
      baseline: bare.deliveriesPerSecond,
      baselineName: bareName,
      ratio: round2(pinroom.deliveriesPerSecond / bare.deliveriesPerSecond),
      target: 0.9,
      cpu: { server: pinroom.cpu.server!, client: pinroom.cpu.client },
      note: `median of ${ROUNDS} interleaved rounds (pinroom ${pinroom.rounds.join(', ')}; bare ${bare.rounds.join(', ')}); baseline CPU: server ${bare.cpu.server}%, client ${bare.cpu.client}%`,
    },
    {
      metric,
      unit: 'deliveries/s',
      pinroom: pinroom.deliveriesPerSecond,
      baseline: raw.deliveriesPerSecond,
      baselineName: 'raw ws, one pre-built frame to every client',
      ratio: round2(pinroom.deliveriesPerSecond / raw.deliveriesPerSecond),
      target: 0.5,
      cpu: { server: pinroom.cpu.server!, client: pinroom.cpu.client },
      note: `median of ${ROUNDS} interleaved rounds (raw ws ${raw.rounds.join(', ')}); baseline CPU: server ${raw.cpu.server}%, client ${raw.cpu.client}% (a saturated load client caps this baseline)`,
    },
    {
      metric: `append-to-receipt latency p50 at ${LATENCY_RATE} deliveries/s`,
      unit: 'ms',
      pinroom: pinroom.p50,
      baseline: bare.p50,
      baselineName: bareName,
      ratio: round2(bare.p50 / pinroom.p50),
      lowerIsBetter: true,
      cpu: { server: pinroom.latencyCpu.server!, client: pinroom.latencyCpu.client },
      note: `${pinroom.samples} samples; raw ws p50 ${raw.p50} ms`,
    },
    {
      metric: `append-to-receipt latency p99 at ${LATENCY_RATE} deliveries/s`,
      unit: 'ms',
      pinroom: pinroom.p99,
      baseline: bare.p99,
      baselineName: bareName,
      // Target: p99 ≤ 1.3 × bare, i.e. bare / pinroom ≥ 1 / 1.3.
      ratio: round2(bare.p99 / pinroom.p99),
      lowerIsBetter: true,
      target: round2(1 / 1.3),
      note: `p99 is ${round2(pinroom.p99 / bare.p99)}× bare (target ≤ 1.3×); raw ws p99 ${raw.p99} ms`,
    },
  ];
  return { scenario: 'fan-out', rows };
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
