/**
 * The test command: type-check, then run every `*.test.ts` under tests/ (unit,
 * integration, e2e, browser, in that order), each file in its own process so a
 * crash or a leaked handle in one file cannot hide another's result. Ends with
 * one plain line, `N passed, N failed`, and exits non-zero on any failure.
 *
 *   npm test                      # everything
 *   npm test -- tests/unit rooms  # only files whose path contains one of these
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const layers = ['unit', 'integration', 'e2e', 'browser'];
const filters = process.argv.slice(2);
const fileTimeoutMs = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 600_000);

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

function run(command: string, args: string[], label: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      process.stdout.write(`\n${label}: timed out after ${fileTimeoutMs} ms, killing it\n`);
      child.kill('SIGKILL');
    }, fileTimeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function summarize(output: string, code: number | null): Outcome {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  const number = (label: string) => {
    const matches = [...plain.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'gm'))];
    return matches.reduce((sum, m) => sum + Number(m[1]), 0);
  };
  const total = number('Total');
  const passed = number('Passed');
  const skipped = number('Skipped');
  let failed = total - passed - skipped;
  // A file that crashed, hung or exited non-zero without a failing test still fails.
  if (code !== 0 && failed === 0) failed = 1;
  if (total === 0 && code === 0) failed = 1; // a test file that ran no test is a defect
  return { passed, failed, skipped };
}

const totals: Outcome = { passed: 0, failed: 0, skipped: 0 };
const failures: string[] = [];

if (filters.length === 0) {
  process.stdout.write('\n== typecheck\n');
  const tsc = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', 'tsconfig.json'], 'typecheck');
  if (tsc.code === 0) totals.passed++;
  else {
    totals.failed++;
    failures.push('typecheck');
  }
}

for (const layer of layers) {
  const files = listTests(join(root, 'tests', layer)).filter((f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)));
  if (layer === 'browser' && files.length > 0) {
    process.stdout.write('\n== browser setup: chromium\n');
    const setup = await run('bash', [join(root, 'tests/setup/ensure-chromium.sh')], 'browser setup');
    if (setup.code !== 0) {
      totals.failed += files.length;
      failures.push('browser setup (chromium could not be installed)');
      continue;
    }
  }
  for (const file of files) {
    const label = relative(root, file);
    process.stdout.write(`\n== ${label}\n`);
    const { code, output } = await run(process.execPath, ['--import', 'tsx', file], label);
    const outcome = summarize(output, code);
    totals.passed += outcome.passed;
    totals.failed += outcome.failed;
    totals.skipped += outcome.skipped;
    if (outcome.failed > 0) failures.push(label);
  }
}

if (failures.length > 0) process.stdout.write(`\nFailed: ${failures.join(', ')}\n`);
// A skipped test fails the run: every test is meant to run.
process.stdout.write(`\n${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}\n`);
process.exit(totals.failed + totals.skipped > 0 ? 1 : 0);
