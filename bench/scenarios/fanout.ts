/**
 * Fan-out: one room of 1,000 subscribers, 100-byte feed entries.
 *
 * - pinroom: every socket authenticated (guest sign-in, JWT handshake), the
 *   subscribers joined by PIN and subscribed to the room's feed; a host
 *   socket publishes with `feed:publish` (validation, rate-limit guard, the
 *   append script, the relay's XREAD, delivery as `feed:entry`).
 * - bare Socket.IO (same version, defaults): `publish` → `io.to(room).emit`.
 * - raw ws: `publish` → one pre-built frame written to every client.
 *
 * Deliveries per second at saturation (the publisher keeps a bounded number
 * of entries not yet delivered to everyone in flight), then append-to-receipt
 * latency (publisher send to each subscriber's receipt, one clock) at a fixed
 * 10,000 deliveries per second. The load runs in this process, pinned to the
 * load core; the servers are pinned to the server core.
 *
 *   taskset -c 1 node --import tsx bench/scenarios/fanout.ts
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RoomView } from '../../shared/schemas.ts';
import { connectMany, EioSocket } from '../lib/eio-client.ts';
import { forEachLimit, okData, promoteToHosts, signInGuests, startPinroom } from '../lib/pinroom.ts';
import { percentile, round2, sleep, startPinnedServer, withCpu } from '../lib/procs.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const SUBSCRIBERS = Number(process.env.BENCH_FANOUT_SUBSCRIBERS ?? 1000);
const ENTRY_BYTES = 100;
/** Entries published but not yet delivered to every subscriber, at most. */
const WINDOW = 64;
const WARMUP_MS = 1500;
const MEASURE_MS = 4000;
const LATENCY_RATE = 10_000; // deliveries per second
const LATENCY_MS = 5000;
const MARK = 0x7e; // '~' brackets the sequence number in the entry text

interface Target {
  name: string;
  pid: number;
  subscribers: EioSocket[];
  publisher: EioSocket;
  /** `["event",payload]` of one publish. */
  encode(seq: number, text: string): string;
  close(): Promise<void>;
}

interface FanoutResult {
  deliveriesPerSecond: number;
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

async function measure(target: Target): Promise<FanoutResult> {
  const n = target.subscribers.length;
  let delivered = 0;
  let published = 0;
  let failed = 0;
  let pumping = false;
  let latencyOn = false;
  const sentAt: number[] = [];
  const latencies: number[] = [];

  const ackLatencies: number[] = [];
  const onAck = (args: unknown[]) => {
    if (latencyOn) ackLatencies.push(performance.now() - sentAt[published - 1]!);
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

  // ---- saturation
  pumping = true;
  const safety = setInterval(pump, 20);
  pump();
  await sleep(WARMUP_MS);
  const before = delivered;
  const { ms, cpu } = await withCpu(target.pid, () => sleep(MEASURE_MS));
  const deliveriesPerSecond = Math.round(((delivered - before) / ms) * 1000);
  pumping = false;
  clearInterval(safety);
  const drainEnd = Date.now() + 10_000;
  while (delivered < (published - failed) * n && Date.now() < drainEnd) await sleep(50);
  await sleep(300);

  // ---- latency at a fixed delivery rate
  latencyOn = true;
  const perSecond = LATENCY_RATE / n;
  const total = Math.round((perSecond * LATENCY_MS) / 1000);
  const latency = await withCpu(target.pid, async () => {
    const start = performance.now();
    for (let k = 0; k < total; k++) {
      const due = start + (k * 1000) / perSecond;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      send();
    }
    const end = Date.now() + 5000;
    while (latencies.length < total * n && Date.now() < end) await sleep(20);
  });
  latencyOn = false;
  const ackSorted = Float64Array.from(ackLatencies).sort();
  process.stderr.write(`${target.name}: ack p50 ${percentile(ackSorted, 50)} p99 ${percentile(ackSorted, 99)}\n`);
  const sorted = Float64Array.from(latencies).sort();
  const ms3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    deliveriesPerSecond,
    cpu,
    p50: ms3(percentile(sorted, 50)),
    p99: ms3(percentile(sorted, 99)),
    latencyCpu: latency.cpu,
    samples: latencies.length,
    errors: failed,
  };
}

async function pinroomTarget(): Promise<Target> {
  const pr = await startPinroom();
  try {
    const url = pr.server.url;
    const sessions = await signInGuests(url, SUBSCRIBERS + 1);
    const [host] = await promoteToHosts(pr, sessions.slice(0, 1));
    const publisher = await EioSocket.connect(url, { auth: { token: host!.accessToken } });
    const { room } = okData<{ room: RoomView }>(await publisher.request('room:create', { title: 'Fan-out bench', maxMembers: SUBSCRIBERS + 1 }), 'room:create');
    const subscribers = await connectMany(url, SUBSCRIBERS, { concurrency: 100, authFor: (i) => ({ token: sessions[i + 1]!.accessToken }) });
    await forEachLimit(SUBSCRIBERS, 50, async (i) => {
      okData(await subscribers[i]!.request('room:join', { pin: room.pin }), 'room:join');
      okData(await subscribers[i]!.request('feed:subscribe', { roomId: room.id }), 'feed:subscribe');
    });
    await sleep(1500); // presence and member.joined traffic of the joins settles
    const head = `["feed:publish",{"roomId":"${room.id}","type":"chat.message","payload":{"text":"`;
    return {
      name: 'pinroom',
      pid: pr.server.pid,
      subscribers,
      publisher,
      encode: (seq, text) => `${head}${text}"},"clientMsgId":"b${seq}"}]`,
      async close() {
        for (const s of [publisher, ...subscribers]) s.close();
        await pr.cleanup();
      },
    };
  } catch (err) {
    await pr.cleanup();
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

async function run(make: () => Promise<Target>): Promise<FanoutResult> {
  const target = await make();
  try {
    const result = await measure(target);
    process.stderr.write(`fanout ${target.name}: ${JSON.stringify(result)}\n`);
    return result;
  } finally {
    await target.close();
  }
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const pinroom = await run(pinroomTarget);
  const bare = await run(() => baselineTarget('socket.io', 'bench/baselines/socketio-server.ts'));
  const raw = await run(() => baselineTarget('ws', 'bench/baselines/ws-server.ts'));
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
      note: `baseline CPU: server ${bare.cpu.server}%, client ${bare.cpu.client}%`,
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
      note: `baseline CPU: server ${raw.cpu.server}%, client ${raw.cpu.client}%`,
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
