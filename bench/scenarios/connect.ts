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

interface Storm {
  perSecond: number;
  cpu: { server?: number; client: number };
}

async function storm(server: Pinned, authFor?: (i: number) => Record<string, unknown>): Promise<Storm> {
  let sockets: EioSocket[] = [];
  const { ms, cpu } = await withCpu(server.pid, async () => {
    sockets = await connectMany(server.url, STORM, { concurrency: IN_FLIGHT, ...(authFor ? { authFor } : {}) });
  });
  for (const s of sockets) s.close();
  return { perSecond: Math.round((STORM / ms) * 1000), cpu };
}

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
  // ---- pinroom: sign in once (HTTP), then storm on one process and measure memory on a fresh one
  const memoryFile = join(tmpdir(), `pinroom-bench-memory-${process.pid}.json`);
  const probe = { BENCH_MEMORY_FILE: memoryFile };
  const pr = await startPinroom(probe, memoryProbeArgs());
  let pinroomStorm: Storm;
  let pinroomBytes: Memory;
  try {
    const sessions = await signInGuests(pr.server.url, Math.max(STORM, IDLE), 64);
    const auth = (i: number) => ({ token: sessions[i]!.accessToken });
    await sleep(1000);
    pinroomStorm = await storm(pr.server, auth);
    process.stderr.write(`connect pinroom storm: ${JSON.stringify(pinroomStorm)}\n`);
    await pr.restart();
    pinroomBytes = await memoryPerConnection(pr.server, memoryFile, auth);
    process.stderr.write(`connect pinroom memory: ${JSON.stringify(pinroomBytes)} B/connection\n`);
  } finally {
    await pr.cleanup();
  }

  // ---- bare Socket.IO, no auth
  let bareStorm: Storm;
  let bareBytes: Memory;
  const bareOptions = { nodeArgs: memoryProbeArgs() };
  let bare = await startPinnedServer('bench/baselines/socketio-server.ts', probe, bareOptions);
  try {
    await sleep(1000);
    bareStorm = await storm(bare);
    process.stderr.write(`connect socket.io storm: ${JSON.stringify(bareStorm)}\n`);
    await bare.stop();
    bare = await startPinnedServer('bench/baselines/socketio-server.ts', probe, bareOptions);
    bareBytes = await memoryPerConnection(bare, memoryFile);
    process.stderr.write(`connect socket.io memory: ${JSON.stringify(bareBytes)} B/connection\n`);
  } finally {
    await bare.stop();
  }

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
      note: `pinroom: JWT (EdDSA) verification + session check in Redis per handshake; baseline CPU: server ${bareStorm.cpu.server}%, client ${bareStorm.cpu.client}%`,
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
