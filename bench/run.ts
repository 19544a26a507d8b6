/**
 * `npm run bench`: every scenario side by side with its baselines, in one run.
 *
 * Each scenario runs as its own process: the socket scenarios (the load
 * generator) on the load core, starting their servers on the server core;
 * the in-process scenarios (pinroom's library code against Redis and
 * PostgreSQL, with redis-benchmark and raw clients as baselines) on the
 * server core. Each creates and drops its own database and key prefix.
 *
 * Writes bench/results/latest.json, latest.md and latest.svg, prints the
 * table, and puts it into bench/README.md between the bench markers (a run
 * of every scenario only, so a partial run never replaces the full table).
 * `npm run bench -- fanout cache` runs only the scenarios named; add
 * `--readme` to write bench/README.md after such a partial run anyway.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { BASE_PG_URL, BASE_REDIS_URL } from '../tests/support/context.ts';
import { removeLeftovers, TEST_TAG_ENV } from '../tests/support/leftovers.ts';
import { BENCH_TABLE, replaceBetween } from '../scripts/docs-pages.ts';
import { describeMachine, LOAD_CORE, pinSelf, root, SERVER_CORE } from './lib/procs.ts';
import { toMarkdown, toSvg, type BenchReport } from './report.ts';
import type { BenchResult } from './types.ts';

const SCENARIOS = [
  { name: 'fanout', core: LOAD_CORE, timeoutMs: 240_000 },
  { name: 'rooms', core: LOAD_CORE, timeoutMs: 900_000 },
  { name: 'churn', core: LOAD_CORE, timeoutMs: 300_000 },
  { name: 'delivery', core: LOAD_CORE, timeoutMs: 600_000 },
  { name: 'join', core: LOAD_CORE, timeoutMs: 900_000 },
  { name: 'connect', core: LOAD_CORE, timeoutMs: 420_000 },
  { name: 'pins', core: SERVER_CORE, timeoutMs: 60_000 },
  { name: 'feed', core: SERVER_CORE, timeoutMs: 90_000 },
  { name: 'cache', core: SERVER_CORE, timeoutMs: 90_000 },
  { name: 'auth', core: SERVER_CORE, timeoutMs: 150_000 },
  { name: 'adapter', core: SERVER_CORE, timeoutMs: 150_000 },
  { name: 'cluster', core: LOAD_CORE, timeoutMs: 600_000 },
] as const;


/**
 * Run one scenario's process, tagged like a test file (tests/support/leftovers.ts)
 * so that its databases, keys and temp folders (signing key, memory probe
 * files) can be found and dropped when it ends, whether it passed or failed.
 */
function runScenario(name: string, core: number, timeoutMs: number, tag: string): Promise<BenchResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', String(core), process.execPath, '--import', 'tsx', join(root, 'bench/scenarios', `${name}.ts`)], {
      cwd: root,
      env: { ...process.env, [TEST_TAG_ENV]: tag },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      process.stderr.write(chunk);
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' ')}`));
      try {
        resolve(JSON.parse(stdout) as BenchResult);
      } catch {
        reject(new Error(`no result on stdout: ${stdout.slice(0, 200)}`));
      }
    });
  });
}

await pinSelf(LOAD_CORE);
const args = process.argv.slice(2);
const only = args.filter((a) => !a.startsWith('--'));
/** A full run writes bench/README.md; `--readme` makes a partial run write it too. */
const updateReadme = only.length === 0 || args.includes('--readme');
const started = Date.now();
const report: BenchReport = {
  startedAt: new Date(started).toISOString(),
  durationSeconds: 0,
  machine: await describeMachine(BASE_REDIS_URL, BASE_PG_URL),
  load: { before: Math.round(loadavg()[0]! * 100) / 100, after: 0 },
  results: [],
};

for (const scenario of SCENARIOS) {
  if (only.length > 0 && !only.includes(scenario.name)) continue;
  process.stderr.write(`\n== ${scenario.name} (core ${scenario.core})\n`);
  const t0 = Date.now();
  const tag = randomBytes(3).toString('hex');
  try {
    report.results.push(await runScenario(scenario.name, scenario.core, scenario.timeoutMs, tag));
  } catch (err) {
    report.results.push({ scenario: scenario.name, rows: [], error: (err as Error).message });
  }
  const left = await removeLeftovers(tag).catch((err: unknown) => (process.stderr.write(`${scenario.name}: could not look for leftovers: ${(err as Error).message}\n`), undefined));
  if (left && left.databases.length + left.keys + left.folders.length > 0) {
    process.stderr.write(`${scenario.name}: removed what it left behind: ${left.databases.length} databases, ${left.keys} Redis keys, ${left.folders.length} temp folders\n`);
  }
  process.stderr.write(`== ${scenario.name}: ${Math.round((Date.now() - t0) / 1000)} s\n`);
}
report.durationSeconds = Math.round((Date.now() - started) / 1000);
report.load.after = Math.round(loadavg()[0]! * 100) / 100;

const dir = join(root, 'bench/results');
mkdirSync(dir, { recursive: true });
const markdown = toMarkdown(report);
writeFileSync(join(dir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(dir, 'latest.md'), markdown);
writeFileSync(join(dir, 'latest.svg'), toSvg(report));
if (updateReadme) {
  const readmePath = join(root, 'bench/README.md');
  writeFileSync(readmePath, replaceBetween(readFileSync(readmePath, 'utf8'), BENCH_TABLE, markdown, 'bench/README.md'));
}
process.stdout.write(`\n${markdown}`);
process.stdout.write(`\nWrote bench/results/latest.{json,md,svg}${updateReadme ? ' and bench/README.md' : ''} in ${report.durationSeconds} s.\n`);
process.exit(report.results.some((r) => r.error) ? 1 : 0);
