/**
 * Connect storm and memory.
 *
 * - Connect storm: 5,000 authenticated connects to pinroom (a guest's access
 *   token in the handshake: JWT verification and the session check in Redis)
 *   against 5,000 connects to a bare Socket.IO server without auth, with the
 *   same number of handshakes in flight.
 * - Memory: resident memory per idle connection, (RSS with 10,000 open
 *   sockets − RSS before) / 10,000, each read after a full GC (both servers
 *   preload bench/lib/memory-probe.cjs), on a freshly started server process.
 *
 *   taskset -c 1 node --import tsx bench/scenarios/connect.ts
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connectMany, type EioSocket } from '../lib/eio-client.ts';
import { signInGuests, startPinroom } from '../lib/pinroom.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryAfterGc, memoryProbeArgs, round2, sleep, startPinnedServer, withCpu, type Pinned } from '../lib/procs.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const STORM = Number(process.env.BENCH_STORM ?? 5000);
const IDLE = Number(process.env.BENCH_IDLE ?? 10_000);
const IN_FLIGHT = 250;
const SETTLE_MS = 3000;
/** Connects (then closed) that warm each server up (JIT, lazily loaded code, pools) before it is measured. */
const WARMUP = 1000;
/** Storms per server, interleaved between the two; the median counts. */
const ROUNDS = 3;

interface Storm {
  perSecond: number;
  cpu: { server?: number; client: number };
}

async function storm(server: Pinned, count: number, authFor?: (i: number) => Record<string, unknown>): Promise<Storm> {
  let sockets: EioSocket[] = [];
  const { ms, cpu } = await withCpu(server.pid, async () => {
    sockets = await connectMany(server.url, count, { concurrency: IN_FLIGHT, ...(authFor ? { authFor } : {}) });
  });
  for (const s of sockets) s.close();
  await sleep(1000); // the closes are handled before the next storm
  return { perSecond: Math.round((count / ms) * 1000), cpu };
}

const medianStorm = (storms: Storm[]) => [...storms].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(storms.length / 2)]!;

interface Memory {
  /** Resident memory per connection after a full GC, bytes. */
  rss: number;
  /** V8 heap in use per connection after a full GC, bytes. */
  heap: number;
}

/** Memory per idle connection: (after − before) / IDLE, each read after a full GC. */
async function memoryPerConnection(server: Pinned, file: string, authFor?: (i: number) => Record<string, unknown>): Promise<Memory> {
  await sleep(SETTLE_MS);
  const before = await memoryAfterGc(server.pid, file);
  const sockets = await connectMany(server.url, IDLE, { concurrency: 200, ...(authFor ? { authFor } : {}) });
  await sleep(SETTLE_MS);
  const after = await memoryAfterGc(server.pid, file);
  for (const s of sockets) s.close();
  return { rss: Math.round((after.rss - before.rss) / IDLE), heap: Math.round((after.heapUsed - before.heapUsed) / IDLE) };
}

const scenario: Scenario = async (): Promise<BenchResult> => {
  const memoryFile = join(tmpdir(), `pinroom-bench-memory-${process.pid}.json`);
  const probe = { BENCH_MEMORY_FILE: memoryFile };
  const bareOptions = { nodeArgs: memoryProbeArgs() };

  // ---- connect storms: both servers up, warmed up, measured in interleaved rounds.
  // Each pinroom connect carries its own guest's token (signed in over HTTP first).
  const pr = await startPinroom(probe, memoryProbeArgs());
  let bare: Pinned | undefined;
  const pinroomStorms: Storm[] = [];
  const bareStorms: Storm[] = [];
  let pinroomBytes: Memory;
  let bareBytes: Memory;
  try {
    bare = await startPinnedServer('bench/baselines/socketio-server.ts', probe, bareOptions);
    const sessions = await signInGuests(pr.server.url, WARMUP + STORM * ROUNDS, 64);
    let next = 0;
    const take = (count: number) => {
      const first = next;
      next += count;
      return (i: number) => ({ token: sessions[first + i]!.accessToken });
    };
    await storm(pr.server, WARMUP, take(WARMUP));
    await storm(bare, WARMUP);
    for (let round = 0; round < ROUNDS; round++) {
      pinroomStorms.push(await storm(pr.server, STORM, take(STORM)));
      bareStorms.push(await storm(bare, STORM));
      process.stderr.write(`connect storm round ${round + 1}: pinroom ${JSON.stringify(pinroomStorms[round])}, socket.io ${JSON.stringify(bareStorms[round])}\n`);
    }

    // ---- memory per idle connection, each on a freshly started process
    await bare.stop();
    await pr.restart();
    const auth = (i: number) => ({ token: sessions[i]!.accessToken });
    pinroomBytes = await memoryPerConnection(pr.server, memoryFile, auth);
    process.stderr.write(`connect pinroom memory: ${JSON.stringify(pinroomBytes)} B/connection\n`);
    await pr.server.stop();
    bare = await startPinnedServer('bench/baselines/socketio-server.ts', probe, bareOptions);
    bareBytes = await memoryPerConnection(bare, memoryFile);
    process.stderr.write(`connect socket.io memory: ${JSON.stringify(bareBytes)} B/connection\n`);
  } finally {
    await bare?.stop();
    await pr.cleanup();
  }
  const pinroomStorm = medianStorm(pinroomStorms);
  const bareStorm = medianStorm(bareStorms);

  const rows: BenchRow[] = [
    {
      metric: `connect storm: ${STORM} connects, ${IN_FLIGHT} handshakes in flight`,
      unit: 'connects/s',
      pinroom: pinroomStorm.perSecond,
      baseline: bareStorm.perSecond,
      baselineName: 'bare Socket.IO 4.8 without auth',
      ratio: round2(pinroomStorm.perSecond / bareStorm.perSecond),
      target: 0.8,
      cpu: { server: pinroomStorm.cpu.server!, client: pinroomStorm.cpu.client },
      note: `median of ${ROUNDS} interleaved rounds after ${WARMUP} warm-up connects each (pinroom ${pinroomStorms.map((s) => s.perSecond).join(', ')}; bare ${bareStorms.map((s) => s.perSecond).join(', ')}); pinroom: JWT (EdDSA) verification + session check in Redis per handshake; baseline CPU: server ${bareStorm.cpu.server}%, client ${bareStorm.cpu.client}%`,
    },
    {
      metric: `memory per idle connection at ${IDLE} connections (RSS delta after full GC)`,
      unit: 'bytes',
      pinroom: pinroomBytes.rss,
      baseline: bareBytes.rss,
      baselineName: 'bare Socket.IO 4.8 with its defaults',
      ratio: round2(bareBytes.rss / pinroomBytes.rss),
      lowerIsBetter: true,
      target: 1,
      note: `V8 heap retained per connection: pinroom ${pinroomBytes.heap} B, bare ${bareBytes.heap} B`,
    },
  ];
  return { scenario: 'connect storm and memory', rows };
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
