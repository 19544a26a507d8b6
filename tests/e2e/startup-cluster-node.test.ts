/**
 * A single-Redis configuration pointed at a Redis Cluster node: `REDIS_URL`
 * names one master of a real 3-master cluster (from the machine's
 * redis-server) and `REDIS_CLUSTER_NODES` is not set. Without the check the
 * node would fail later on a raw `MOVED` (or answer 503 on most keys); with
 * it, start-up stops at once with exit code 1 and one plain line on stderr
 * naming the setting to use.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startRedisCluster, type OwnedCluster } from '../support/redis-cluster.ts';

const test = suite('start-up/cluster node');
const root = new URL('../..', import.meta.url).pathname;
/** Longest the refused start-up may take, ms (generous: the machine is shared). */
const EXIT_DEADLINE_MS = 60_000;

let ctx: TestContext;
let cluster: OwnedCluster;

test.before(async () => {
  ctx = createTestContext({ REDIS_CLUSTER_NODES: '' });
  cluster = await startRedisCluster({ masters: 3 });
});

test.after(async () => {
  await cluster?.stop();
  await ctx?.cleanup();
});

test('REDIS_URL naming a Redis Cluster node without REDIS_CLUSTER_NODES stops start-up with exit code 1 and one line naming REDIS_CLUSTER_NODES', async () => {
  const node = cluster.nodes[0]!;
  const redisUrl = `redis://127.0.0.1:${node.port}`;
  const env = { ...ctx.env, REDIS_URL: redisUrl, REDIS_CLUSTER_NODES: '', LOG_LEVEL: 'info', PORT: '0' };
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_DEADLINE_MS);
  const [code, signal] = await closed.finally(() => clearTimeout(timer));
  const printed = `stdout:\n${stdout}\nstderr:\n${stderr}`;
  assert.is(signal, null, `the node exited by itself within ${EXIT_DEADLINE_MS} ms:\n${printed}`);
  assert.is(code, 1, `exit code 1:\n${printed}`);
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  assert.is(lines.length, 1, `one line on stderr:\n${printed}`);
  assert.ok(lines[0]!.startsWith('pinroom: '), `a plain line, not a JSON log line or a stack: ${lines[0]}`);
  assert.ok(lines[0]!.includes(redisUrl), `it names the Redis it reached: ${lines[0]}`);
  assert.ok(lines[0]!.includes('REDIS_CLUSTER_NODES='), `it names the setting to use: ${lines[0]}`);
  assert.not.ok(stdout.includes('"level":60'), `no fatal log line besides it:\n${printed}`);
  assert.not.ok(/MOVED|CROSSSLOT/.test(stdout + stderr), `no raw cluster redirection reaches the output:\n${printed}`);
});

test.run();
