import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Db } from '../../server/db/database.ts';
import { createMetrics } from '../../server/metrics.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { counterValue, createSlowUserLoader, insertUser } from '../support/cache.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { createQueryCounter, type QueryCounter } from '../support/query-counter.ts';

const test = suite('cache/processes');
const root = new URL('../..', import.meta.url).pathname;
// Generous: the lock must outlive the slow load, and the waiters must outwait it, on a loaded machine.
const env = { CACHE_LOCK_TTL_MS: '15000', CACHE_LOCK_WAIT_MS: '15000' };
const SLOW_MS = 300;
let ctx: TestContext;
let counter: QueryCounter;
let db: Db;
const children: ChildProcess[] = [];

test.before(async () => {
  ctx = createTestContext(env);
  await ctx.migrate();
  counter = createQueryCounter();
  db = ctx.db().withPlugin(counter.plugin);
});
test.after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await ctx.cleanup();
});

interface ChildResult {
  queries: number;
  names: (string | null)[];
  stale: boolean;
}

/** Spawn a reader process; resolves once it is connected and waiting for `go`. */
async function spawnReader(userId: string, reads: number): Promise<{ go(): Promise<ChildResult> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'tests/support/cache-reader-process.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ...ctx.env, USER_ID: userId, READS: String(reads), SLOW_MS: String(SLOW_MS) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  let errors = '';
  child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const exited = once(child, 'exit');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`reader did not start:\n${errors}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.startsWith('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`reader exited early:\n${errors}`)));
  });
  return {
    async go() {
      child.stdin!.write('go\n');
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const [code] = await exited;
      clearTimeout(timer);
      assert.is(code, 0, `reader exit code (stderr: ${errors})`);
      return JSON.parse(output.slice('ready\n'.length).trim()) as ChildResult;
    },
  };
}

test('1,000 concurrent reads of a cold key in each of two processes cause at most one query per process', async () => {
  const id = await insertUser(db, 'Shared');
  const reader = await spawnReader(id, 1000);
  const redis = ctx.redis();
  const metrics = createMetrics();
  const users = createSlowUserLoader({ db, redis, scripts: createScripts(redis), keys: createKeys(ctx.keyPrefix), metrics, config: ctx.config }, SLOW_MS);
  counter.reset();

  const theirs = reader.go();
  const ours = await Promise.all(Array.from({ length: 1000 }, () => users.get(id)));
  const child = await theirs;

  assert.ok(ours.every((r) => r.value?.name === 'Shared' && !r.stale));
  assert.equal(child.names, ['Shared']);
  assert.is(child.stale, false);
  const here = counter.countFrom('users');
  assert.ok(here <= 1, `this process ran ${here} queries`);
  assert.ok(child.queries <= 1, `the other process ran ${child.queries} queries`);
  // The loads overlap (each is held SLOW_MS), so the fill lock makes one process wait for the other's fill.
  assert.is(here + child.queries, 1, 'one query across both processes');
  if (here === 0) {
    const filled = (await counterValue(metrics.cache.coalesced, { loader: 'user', scope: 'fill' })) + (await counterValue(metrics.cache.hits, { loader: 'user' }));
    assert.ok(filled >= 1, 'this process was answered by the other one\'s fill');
  }
});

test.run();
