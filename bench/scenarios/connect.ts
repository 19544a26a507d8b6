/**
 * Connect storms and memory.
 *
 * - Connect storm: STORM authenticated connects to pinroom, each with a guest's
 *   access token the server has not seen (JWT verification, the session check
 *   in Redis, the socket's groups and deadlines), IN_FLIGHT handshakes at a
 *   time, against two baselines run side by side in the same rounds:
 *   - the fair one: bare Socket.IO with the same access-token check in `io.use`
 *     (bench/baselines/socketio-auth-server.ts: pinroom's verification code, no
 *     cache, no session check);
 *   - bare Socket.IO without auth (bench/baselines/socketio-server.ts).
 * - Reconnect storm: the same STORM tokens connect to pinroom again (what a
 *   node sees when clients it served reconnect: a flaky network, a transport
 *   closed by a proxy): the verified-token cache answers the signature check,
 *   the session check still runs. Against the fair baseline, which verifies
 *   every handshake.
 * - Memory: resident memory per idle connection, (RSS with IDLE open
 *   sockets − RSS before) / IDLE, each read after a full GC and a
 *   memory-reducing one (both servers preload bench/lib/memory-probe.cjs), on
 *   a freshly started server process.
 *
 * Rounds are interleaved (pinroom, fair, bare, pinroom again) after a warm-up
 * of each server; rows give the medians, notes the per-round values and the
 * server's CPU time per connect (less sensitive than throughput to other work
 * on a shared machine).
 *
 *   taskset -c 1 node --import tsx bench/scenarios/connect.ts
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tempDirPrefix } from '../../tests/support/leftovers.ts';
import { connectMany, type EioSocket } from '../lib/eio-client.ts';
import { signInGuests, startPinroom } from '../lib/pinroom.ts';
import { memoryAfterGc, memoryProbeArgs, round2, sleep, startPinnedServer, withCpu, type Pinned } from '../lib/procs.ts';
import type { BenchResult, BenchRow, Scenario } from '../types.ts';

const STORM = Number(process.env.BENCH_STORM ?? 5000);
const IDLE = Number(process.env.BENCH_IDLE ?? 10_000);
const IN_FLIGHT = 250;
const SETTLE_MS = 3000;
/** Connects (then closed) that warm each server up (JIT, lazily loaded code, pools) before it is measured. */
const WARMUP = 1000;
/** Rounds of storms, interleaved between the servers; the median counts. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

interface Storm {
  perSecond: number;
  /** Server CPU time per connect, µs. */
  cpuPerConnect: number;
  cpu: { server?: number; client: number };
}

async function storm(server: Pinned, count: number, authFor?: (i: number) => Record<string, unknown>): Promise<Storm> {
  let sockets: EioSocket[] = [];
  const { ms, cpu } = await withCpu(server.pid, async () => {
    sockets = await connectMany(server.url, count, { concurrency: IN_FLIGHT, ...(authFor ? { authFor } : {}) });
  });
  for (const s of sockets) s.close();
  await sleep(1000); // the closes are handled before the next storm
  return { perSecond: Math.round((count / ms) * 1000), cpuPerConnect: Math.round(((cpu.server ?? 0) * ms * 10) / count), cpu };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const medianStorm = (storms: Storm[]) => [...storms].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(storms.length / 2)]!;
const perRound = (storms: Storm[]) => storms.map((s) => s.perSecond).join(', ');
const cpuText = (storms: Storm[]) => `${median(storms.map((s) => s.cpuPerConnect))} µs (${storms.map((s) => s.cpuPerConnect).join(', ')})`;
const ratios = (a: Storm[], b: Storm[]) => a.map((s, i) => round2(s.perSecond / b[i]!.perSecond)).join(', ');

interface Memory {
  /** Resident memory per connection after a full GC and a memory-reducing one, bytes. */
  rss: number;
  /** V8 heap in use per connection after a full GC, bytes. */
  heap: number;
}

/** Memory per idle connection: (after − before) / IDLE, each read after a full GC and a memory-reducing one. */
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
  const memoryFile = join(tmpdir(), `${tempDirPrefix()}memory.json`);
  const probe = { BENCH_MEMORY_FILE: memoryFile };
  const bareOptions = { nodeArgs: memoryProbeArgs() };

  // ---- storms: the three servers up, warmed up, measured in interleaved rounds.
  // Each round's pinroom storm carries tokens pinroom has not seen (signed in over
  // HTTP first); the fair baseline verifies the same tokens; the reconnect storm
  // sends them to pinroom again.
  const pr = await startPinroom(probe, memoryProbeArgs());
  let bare: Pinned | undefined;
  let fair: Pinned | undefined;
  const pinroomStorms: Storm[] = [];
  const fairStorms: Storm[] = [];
  const bareStorms: Storm[] = [];
  const reconnectStorms: Storm[] = [];
  let pinroomBytes: Memory;
  let bareBytes: Memory;
  try {
    bare = await startPinnedServer('bench/baselines/socketio-server.ts', probe, bareOptions);
    fair = await startPinnedServer('bench/baselines/socketio-auth-server.ts', pr.ctx.env);
    const sessions = await signInGuests(pr.server.url, WARMUP + STORM * ROUNDS, 64);
    const tokens = (first: number) => (i: number) => ({ token: sessions[first + i]!.accessToken });
    await storm(pr.server, WARMUP, tokens(0));
    await storm(fair, WARMUP, tokens(0));
    await storm(bare, WARMUP);
    for (let round = 0; round < ROUNDS; round++) {
      const first = WARMUP + round * STORM;
      pinroomStorms.push(await storm(pr.server, STORM, tokens(first)));
      fairStorms.push(await storm(fair, STORM, tokens(first)));
      bareStorms.push(await storm(bare, STORM));
      reconnectStorms.push(await storm(pr.server, STORM, tokens(first)));
      const line = (s: Storm) => `${s.perSecond}/s ${s.cpuPerConnect} µs`;
      process.stderr.write(
        `connect storm round ${round + 1}: pinroom ${line(pinroomStorms[round]!)}, fair ${line(fairStorms[round]!)}, bare ${line(bareStorms[round]!)}, pinroom reconnect ${line(reconnectStorms[round]!)}\n`,
      );
    }

    // ---- memory per idle connection, each on a freshly started process
    await Promise.all([bare.stop(), fair.stop()]);
    await pr.restart();
    const auth = (i: number) => ({ token: sessions[i]!.accessToken });
    pinroomBytes = await memoryPerConnection(pr.server, memoryFile, auth);
    process.stderr.write(`connect pinroom memory: ${JSON.stringify(pinroomBytes)} B/connection\n`);
    await pr.server.stop();
    bare = await startPinnedServer('bench/baselines/socketio-server.ts', probe, bareOptions);
    bareBytes = await memoryPerConnection(bare, memoryFile);
    process.stderr.write(`connect socket.io memory: ${JSON.stringify(bareBytes)} B/connection\n`);
  } finally {
    await Promise.all([bare?.stop(), fair?.stop()]);
    await pr.cleanup();
    rmSync(memoryFile, { force: true });
  }
  const pinroomStorm = medianStorm(pinroomStorms);
  const fairStorm = medianStorm(fairStorms);
  const bareStorm = medianStorm(bareStorms);
  const reconnectStorm = medianStorm(reconnectStorms);
  const rounds = `median of ${ROUNDS} interleaved rounds after ${WARMUP} warm-up connects each`;

  const rows: BenchRow[] = [
    {
      metric: `connect storm: ${STORM} connects with unseen tokens, ${IN_FLIGHT} handshakes in flight`,
      unit: 'connects/s',
      pinroom: pinroomStorm.perSecond,
      baseline: fairStorm.perSecond,
      baselineName: 'bare Socket.IO 4.8 with the same access-token check in io.use',
      ratio: round2(pinroomStorm.perSecond / fairStorm.perSecond),
      target: 0.8,
      cpu: { server: pinroomStorm.cpu.server!, client: pinroomStorm.cpu.client },
      note: `${rounds} (pinroom ${perRound(pinroomStorms)}; fair baseline ${perRound(fairStorms)}; per-round ratios ${ratios(pinroomStorms, fairStorms)}); server CPU per connect: pinroom ${cpuText(pinroomStorms)}, baseline ${cpuText(fairStorms)}; pinroom: JWT verification (node:crypto Ed25519 + claim checks) + session check in Redis (batched per event-loop turn) + user and session groups + token deadlines per handshake; baseline: the same JWT verification only`,
    },
    {
      metric: `connect storm: ${STORM} connects with unseen tokens, ${IN_FLIGHT} handshakes in flight, vs no auth`,
      unit: 'connects/s',
      pinroom: pinroomStorm.perSecond,
      baseline: bareStorm.perSecond,
      baselineName: 'bare Socket.IO 4.8 without auth',
      ratio: round2(pinroomStorm.perSecond / bareStorm.perSecond),
      note: `the same pinroom rounds as the row above; bare ${perRound(bareStorms)}; per-round ratios ${ratios(pinroomStorms, bareStorms)}; server CPU per connect: bare ${cpuText(bareStorms)}`,
    },
    {
      metric: `reconnect storm: the same ${STORM} tokens again, ${IN_FLIGHT} handshakes in flight`,
      unit: 'connects/s',
      pinroom: reconnectStorm.perSecond,
      baseline: fairStorm.perSecond,
      baselineName: 'bare Socket.IO 4.8 with the same access-token check in io.use',
      ratio: round2(reconnectStorm.perSecond / fairStorm.perSecond),
      cpu: { server: reconnectStorm.cpu.server!, client: reconnectStorm.cpu.client },
      note: `${rounds} (pinroom ${perRound(reconnectStorms)}; fair baseline ${perRound(fairStorms)}; per-round ratios ${ratios(reconnectStorms, fairStorms)}; vs bare without auth ${ratios(reconnectStorms, bareStorms)}); server CPU per connect ${cpuText(reconnectStorms)}; pinroom: tokens it verified in the round before, answered by the verified-token cache (AUTH_TOKEN_CACHE_SIZE), session check still in Redis; the baseline verifies every handshake`,
    },
    {
      metric: `memory per idle connection at ${IDLE} connections (RSS delta after a memory-reducing full GC)`,
      unit: 'bytes',
      pinroom: pinroomBytes.rss,
      baseline: bareBytes.rss,
      baselineName: 'bare Socket.IO 4.8 with its defaults',
      ratio: round2(bareBytes.rss / pinroomBytes.rss),
      lowerIsBetter: true,
      target: 1,
      note: `V8 heap retained per connection: pinroom ${pinroomBytes.heap} B (its verified-token cache filled by these connections included), bare ${bareBytes.heap} B`,
    },
  ];
  return { scenario: 'connect storm and memory', rows };
};

export default scenario;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
}
