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
import { median, round2 } from '../lib/procs.ts';
import { bareRooms, createRoomsDriver, pinroomRooms, RECEIVERS, searchMaxRate, summary, type ProbeResult, type RoomsTarget } from '../lib/rooms-load.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const SIZES = (process.env.BENCH_ROOMS_SIZES ?? '250,500').split(',').map(Number);
const MEMBERS = RECEIVERS - 1;
const ROUNDS = Number(process.env.BENCH_ROOMS_ROUNDS ?? 3);
const LATENCY_RATE = 2000;
const LATENCY_ROOMS = 250;
const LATENCY_ROUNDS = 2;

const scenario: Scenario = async (): Promise<BenchResult> => {
  const rows: BenchRow[] = [];
  const bareName = 'bare Socket.IO 4.8 (io.to(room).emit), same criteria';
  for (const size of SIZES) {
    const targets: RoomsTarget[] = [];
    try {
      targets.push(await pinroomRooms(size));
      targets.push(await bareRooms(size));
      const probes = targets.map((t) => createRoomsDriver(t));
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
