/**
 * Processes of a benchmark: servers pinned to one core with `taskset`, their
 * CPU time and resident memory read from /proc, and the machine described.
 *
 * Core layout on the 2-core machine: servers (pinroom and every baseline
 * server, and the in-process scenarios that play the server) run on
 * SERVER_CORE; load generators run on LOAD_CORE. Redis and PostgreSQL are
 * left to the scheduler.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { promisify } from 'node:util';

export const root = new URL('../..', import.meta.url).pathname;
export const SERVER_CORE = 0;
export const LOAD_CORE = cpus().length > 1 ? 1 : 0;

const run = promisify(execFile);
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface Pinned {
  process: ChildProcess;
  pid: number;
  url: string;
  output(): string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Run `node --import tsx <script>` pinned to `core` (a core number, or a taskset list such as '0,1'), wait until `GET <readyPath>` answers 200. */
export async function startPinnedServer(
  script: string,
  env: Record<string, string>,
  { core = SERVER_CORE, readyPath = '/healthz', port, nodeArgs = [] }: { core?: number | string; readyPath?: string; port?: number; nodeArgs?: string[] } = {},
): Promise<Pinned> {
  const listenPort = port ?? (await freePort());
  const child = spawn('taskset', ['-c', String(core), process.execPath, ...nodeArgs, '--import', 'tsx', script], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(listenPort), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = once(child, 'exit');
  const url = `http://127.0.0.1:${listenPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${script} exited with ${child.exitCode}:\n${output}`);
    try {
      const res = await fetch(`${url}${readyPath}`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${script} not ready within 60 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    process: child,
    pid: child.pid!,
    url,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Node arguments that let `memoryAfterGc` read a server's retained memory (see memory-probe.cjs). */
export function memoryProbeArgs(): string[] {
  return ['--expose-gc', '--require', `${root}bench/lib/memory-probe.cjs`];
}

/**
 * Memory of a server started with `memoryProbeArgs()` and `BENCH_MEMORY_FILE`:
 * RSS, V8 heap in use and external memory after a full GC followed by a
 * memory-reducing one, and `rssAfterFullGc`, the RSS between the two (on
 * Node 24 it still counts the free heap pages V8 keeps; see memory-probe.cjs).
 */
export async function memoryAfterGc(pid: number, file: string): Promise<{ rss: number; heapUsed: number; external: number; rssAfterFullGc: number }> {
  rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 100 && !existsSync(file); i++) await sleep(50);
  await sleep(200);
  const usage = JSON.parse(readFileSync(file, 'utf8')) as { heapUsed: number; external: number; afterFullGc: { rss: number } };
  return { rss: rssBytes(pid), heapUsed: usage.heapUsed, external: usage.external, rssAfterFullGc: usage.afterFullGc.rss };
}

/** CPU time (user + system) a process has used so far, ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[11] is utime, fields[12] stime (fields 14 and 15 of proc(5), counted from the state field).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

/** Resident set size of a process, bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/**
 * Measure CPU use of a server process and of this process (the load
 * generator) over `fn`, in percent of one core.
 */
export async function withCpu<T>(serverPid: number | undefined, fn: () => Promise<T>): Promise<{ result: T; ms: number; cpu: { server?: number; client: number } }> {
  const serverStart = serverPid === undefined ? 0 : cpuMs(serverPid);
  const clientStart = process.cpuUsage();
  const started = performance.now();
  const result = await fn();
  const ms = performance.now() - started;
  const client = process.cpuUsage(clientStart);
  const cpu: { server?: number; client: number } = { client: Math.round(((client.user + client.system) / 1000 / ms) * 100) };
  if (serverPid !== undefined) cpu.server = Math.round(((cpuMs(serverPid) - serverStart) / ms) * 100);
  return { result, ms, cpu };
}

/** Pin this process to `core`. */
export async function pinSelf(core: number): Promise<void> {
  await run('taskset', ['-p', '-c', String(core), String(process.pid)]);
}

/** `redis-benchmark ... --csv`; requests per second of its single test. */
export async function redisBenchmark(url: string, args: string[]): Promise<number> {
  const { hostname, port } = new URL(url);
  const { stdout } = await run('redis-benchmark', ['-h', hostname, '-p', port || '6379', '--csv', ...args]);
  const row = stdout
    .trim()
    .split('\n')
    .find((l) => /^"[A-Z]/.test(l) && !l.startsWith('"test"'));
  const match = row && /^"[^"]*","([0-9.]+)"/.exec(row);
  if (!match) throw new Error(`unexpected redis-benchmark output: ${stdout}`);
  return Math.round(Number(match[1]));
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  redis: string;
  postgres: string;
  kernel: string;
}

/** The machine, for the report. */
export async function describeMachine(redisUrl: string, pgUrl: string): Promise<MachineInfo> {
  const { hostname, port } = new URL(redisUrl);
  const redisInfo = await run('redis-cli', ['-h', hostname, '-p', port || '6379', 'INFO', 'server']).then(
    (r) => /redis_version:(\S+)/.exec(r.stdout)?.[1] ?? 'unknown',
    () => 'unknown',
  );
  const pgVersion = await run('psql', [pgUrl, '-tAc', 'show server_version']).then(
    (r) => r.stdout.trim().split(' ')[0] ?? 'unknown',
    () => 'unknown',
  );
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const kib = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0);
  const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(kib / 1024 / 1024),
    node: process.version,
    redis: redisInfo,
    postgres: pgVersion,
    kernel,
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const round2 = (n: number) => Math.round(n * 100) / 100;
/** The median element of `values` by `key` (the upper one of an even count). */
export const median = <T>(values: T[], key: (v: T) => number): T => [...values].sort((a, b) => key(a) - key(b))[Math.floor(values.length / 2)]!;
export const percentile = (sorted: ArrayLike<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
