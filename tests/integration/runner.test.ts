/**
 * The test command itself (tests/run.ts), run on the files under
 * tests/fixtures/runner/: its closing line counts failures and skips right,
 * a failing `before` hook's error is printed, `.only`/`.skip` are refused with
 * CI=true, and a file that is killed or hangs leaves no process, database,
 * key or folder behind; a full run covers each supported Node.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import pg from 'pg';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BASE_PG_URL, BASE_REDIS_URL } from '../support/leftovers.ts';

const test = suite('tests/run');
const root = new URL('../..', import.meta.url).pathname;

interface RunResult {
  code: number | null;
  output: string;
  /** The closing line. */
  summary: string;
  /** The JSON a fixture printed after `FIXTURE `. */
  fixture?: { database?: string; keyPrefix?: string; pids: number[] };
}

function runFixtures(caseName: string, env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'tests/run.ts', `tests/fixtures/runner/${caseName}/`], {
      cwd: root,
      env: { ...process.env, CI: '', TEST_RUNNER_DIR: `tests/fixtures/runner/${caseName}`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    // A runner that hangs is a failure of this test, not a hang of the suite.
    const deadline = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('close', (code) => {
      clearTimeout(deadline);
      const lines = output.trim().split('\n');
      const fixture = /FIXTURE (\{.*\})$/m.exec(output);
      resolve({ code, output, summary: lines[lines.length - 1]!, ...(fixture ? { fixture: JSON.parse(fixture[1]!) } : {}) });
    });
  });
}

/** Whether `pid` is a live process (a zombie waiting for init to reap it is not). */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

test('a failing and two skipped tests next to a file whose before hook throws: the line says 1 passed, 3 failed, 2 skipped, the hook error is printed, and a check that did not run is listed as such', async () => {
  const run = await runFixtures('counting');
  assert.is(run.summary, '1 passed, 3 failed, 2 skipped', run.output);
  assert.is(run.code, 1);
  assert.match(run.output, 'fixture: the before hook failed on purpose');
  assert.match(run.output, 'fixture: this failure is on purpose');
  assert.match(run.output, 'Not run (no verdict, not counted as passed):\n  tests/fixtures/runner/counting/unit/mixed.test.ts: fixture check (its source did not answer)');
});

test('test.only counts the tests it leaves out as skipped, which fails the run', async () => {
  const run = await runFixtures('only');
  assert.is(run.summary, '1 passed, 0 failed, 2 skipped', run.output);
  assert.is(run.code, 1);
});

test('with CI=true, test.only and test.skip are refused: the files fail with the reason', async () => {
  const only = await runFixtures('only', { CI: 'true' });
  assert.is(only.summary, '0 passed, 1 failed', only.output);
  assert.match(only.output, /test\.only\('the only one'\) in fixture\/only: refused with CI=true/);
  const skip = await runFixtures('counting', { CI: 'true' });
  assert.match(skip.output, /test\.skip\('skipped one'\) in fixture\/mixed: refused with CI=true/);
  assert.is(skip.code, 1);
  assert.not.match(skip.summary, 'skipped');
});

test('a file killed mid-run leaves no server, redis-server, database or key behind', async () => {
  const run = await runFixtures('killed');
  assert.is(run.summary, '0 passed, 1 failed', run.output);
  const fixture = run.fixture!;
  assert.ok(fixture && fixture.pids.length === 2, `the fixture got as far as its servers: ${run.output}`);
  for (const pid of fixture.pids) assert.not.ok(alive(pid), `process ${pid} is gone`);
  assert.match(run.output, /removed what it left behind: 1 databases, [1-9]\d* Redis keys, 1 temp folders/);
  const client = new pg.Client({ connectionString: BASE_PG_URL });
  await client.connect();
  const redis = new Redis(BASE_REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [fixture.database]);
    assert.is(rowCount, 0, `database ${fixture.database} dropped`);
    const [, keys] = await redis.scan('0', 'MATCH', `${fixture.keyPrefix}*`, 'COUNT', 10_000);
    assert.equal(keys, [], 'its keys are gone');
  } finally {
    await client.end();
    redis.disconnect();
  }
});

test('a file that outlives TEST_FILE_TIMEOUT_MS is killed with every process it started, and counts as a failure', async () => {
  const run = await runFixtures('hung', { TEST_FILE_TIMEOUT_MS: '15000' });
  assert.is(run.summary, '0 passed, 1 failed', run.output);
  assert.match(run.output, 'timed out after 15000 ms, killing its process group');
  const [pid] = run.fixture!.pids;
  assert.not.ok(alive(pid!), `its child ${pid} is gone`);
});

test('a full run goes through every file once under each supported Node, and its closing line sums both', async () => {
  const run = await runFixtures('nodes', { TEST_NODES: 'all' });
  assert.is(run.summary, '2 passed, 0 failed', run.output);
  assert.is(run.code, 0);
  const versions = [...run.output.matchAll(/NODE (v\d+\.\d+\.\d+)$/gm)].map((m) => m[1]!);
  assert.is(versions.length, 2, run.output);
  assert.is(new Set(versions).size, 2, `two different Nodes: ${versions.join(', ')}`);
  assert.ok(versions.some((v) => v.startsWith('v24.')), `one of them is Node 24: ${versions.join(', ')}`);
});

test('a filtered run uses the Node that runs the runner, once', async () => {
  const run = await runFixtures('nodes');
  assert.is(run.summary, '1 passed, 0 failed', run.output);
  assert.match(run.output, `NODE ${process.version}`);
});

test.run();
