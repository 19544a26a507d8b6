/**
 * A first `npm start`: on a terminal in development the server logs readable
 * lines (pino-pretty), into a pipe JSON lines; either way the start-up line
 * says where to open the demo and which Redis and PostgreSQL it uses, with no
 * password. The terminal is a real pseudo-terminal (util-linux `script`).
 */
import { spawn } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { demoBuilt } from '../../server/http/demo.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { freePort } from '../support/redis-server.ts';
import { startTestServer } from '../support/server.ts';

const test = suite('first run');
const root = new URL('../..', import.meta.url).pathname;
const PASSWORD = 'first-run-secret';
let ctx: TestContext;
let databaseUrl: string;

test.before(() => {
  ctx = createTestContext();
  // PostgreSQL here trusts local connections: the password is accepted and ignored, and must not be printed.
  const url = new URL(ctx.databaseUrl);
  url.password = PASSWORD;
  databaseUrl = url.toString();
});
test.after(async () => {
  await ctx.cleanup();
});

const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '');
const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

test('on a terminal in development the logs are readable lines and the start-up line names the demo, Redis and PostgreSQL', async () => {
  assert.ok(demoBuilt(), 'the demo is built (npm run build:client, run by npm test)');
  const port = await freePort();
  const env = { ...ctx.env, NODE_ENV: 'development', LOG_LEVEL: 'info', PORT: String(port), DATABASE_URL: databaseUrl };
  const command = `exec ${[process.execPath, '--import', 'tsx', 'server/main.ts'].map(shellQuote).join(' ')}`;
  // `script` runs the server with a pseudo-terminal as its stdout and copies what it prints to ours.
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  try {
    const deadline = Date.now() + 60_000;
    while (!plain(output).includes('pinroom listening') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    const text = plain(output);
    const line = text.split('\n').find((l) => l.includes('pinroom listening'));
    assert.ok(line, `the server started:\n${text}`);
    assert.is(
      line!.slice(line!.indexOf('pinroom listening')),
      `pinroom listening: open http://localhost:${port}/ (Redis ${ctx.env.REDIS_URL}, PostgreSQL ${databaseUrl.replace(PASSWORD, '****')})`,
    );
    assert.match(line!, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: /, 'a readable line: time, level, message');
    assert.not.ok(
      text.split('\n').some((l) => l.trim().startsWith('{')),
      `no JSON line:\n${text}`,
    );
    assert.not.match(text, PASSWORD);
  } finally {
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

test('into a pipe the logs are JSON lines, and the start-up line carries the same facts as fields', async () => {
  const server = await startTestServer({ ...ctx.env, NODE_ENV: 'development', DATABASE_URL: databaseUrl });
  try {
    const lines = server
      .output()
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const start = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('pinroom listening'));
    assert.ok(start, server.output());
    assert.is(start!.demo, `http://localhost:${server.port}/`);
    assert.is(start!.redis, ctx.env.REDIS_URL);
    assert.is(start!.postgres, databaseUrl.replace(PASSWORD, '****'));
    assert.match(String(start!.msg), `open http://localhost:${server.port}/`);
    assert.not.match(server.output(), PASSWORD);
  } finally {
    await server.stop();
  }
});

test.run();
