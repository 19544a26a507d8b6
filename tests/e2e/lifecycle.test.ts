import { spawnSync } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signInGuest } from '../support/auth.ts';
import { connect, disconnected } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { freePort } from '../support/redis-server.ts';
import { startTestServer } from '../support/server.ts';

const test = suite('server lifecycle');
let ctx: TestContext;

test.before(() => {
  ctx = createTestContext();
});
test.after(async () => {
  await ctx.cleanup();
});

test('a server process creates its database, becomes ready, accepts a socket, and exits 0 on SIGTERM', async () => {
  const server = await startTestServer(ctx.env);
  try {
    const health = await fetch(`${server.url}/healthz`);
    assert.is(health.status, 200);
    const ready = await fetch(`${server.url}/readyz`);
    assert.is(ready.status, 200);
    assert.equal(await ready.json(), { status: 'ready', failed: [] });

    const { accessToken } = await signInGuest(server.url, 'Lifecycle');
    const socket = await connect(server.url, { token: accessToken });
    assert.ok(socket.connected);
    const gone = disconnected(socket);
    const started = Date.now();
    const code = await server.stop('SIGTERM');
    assert.is(code, 0, server.output());
    assert.ok(Date.now() - started < 10_000);
    // A transport close, not a server-side disconnect: clients reconnect by themselves.
    assert.is(await gone, 'transport close');
    socket.close();
  } finally {
    await server.kill();
  }
});

test('with Redis unreachable, start fails in one clear line and a non-zero exit', async () => {
  const port = await freePort();
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: new URL('../..', import.meta.url).pathname,
    env: { PATH: process.env.PATH ?? '', ...ctx.env, REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_CONNECT_TIMEOUT_MS: '2000' },
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.is.not(result.status, 0);
  const lines = result.stderr.trim().split('\n').filter((l) => l.startsWith('pinroom:'));
  assert.is(lines.length, 1, result.stderr);
  assert.match(lines[0]!, `redis://127.0.0.1:${port}`);
  assert.match(lines[0]!, 'docker compose up -d redis postgres');
  assert.not.match(result.stderr, /\n\s+at /, 'no stack trace');
});

test('with PostgreSQL unreachable, start fails in one clear line and a non-zero exit', async () => {
  const port = await freePort();
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: new URL('../..', import.meta.url).pathname,
    env: { PATH: process.env.PATH ?? '', ...ctx.env, DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/pinroom`, DB_CONNECT_TIMEOUT_MS: '2000' },
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.is.not(result.status, 0);
  const lines = result.stderr.trim().split('\n').filter((l) => l.startsWith('pinroom:'));
  assert.is(lines.length, 1, result.stderr);
  assert.match(lines[0]!, `127.0.0.1:${port}`);
  assert.not.match(result.stderr, /\n\s+at /, 'no stack trace');
});

test('malformed JSON and unknown routes get typed errors, not 500s', async () => {
  const server = await startTestServer(ctx.env);
  try {
    const bad = await fetch(`${server.url}/healthz`, { method: 'POST', body: '{nope', headers: { 'content-type': 'application/json' } });
    assert.ok(bad.status === 400 || bad.status === 404);
    const body = (await bad.json()) as { error: { code: string } };
    assert.ok(['bad_request', 'not_found'].includes(body.error.code));
    const missing = await fetch(`${server.url}/no/such/route`);
    assert.is(missing.status, 404);
    assert.is(((await missing.json()) as { error: { code: string } }).error.code, 'not_found');
  } finally {
    await server.stop();
  }
});

test.run();
