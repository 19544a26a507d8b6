/**
 * How a node ends on SIGTERM, held open on purpose: its Redis sits behind a
 * TCP proxy that the test stalls before the signal, so the drain waits on
 * Redis (presence cleanup) for as long as the test wants. That makes each
 * state observable instead of a race: readiness answers 503 `draining` for the
 * whole drain and exit 0 follows when it completes; a drain that outlives
 * `SHUTDOWN_TIMEOUT_MS` ends with exit 1; a second signal exits 1 at once.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BASE_REDIS_URL, createTestContext, type TestContext } from '../support/context.ts';
import { readyz, until } from '../support/faults.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('shutdown');
let ctx: TestContext;
const proxies: TcpProxy[] = [];
const servers: TestServer[] = [];

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
});
test.after(async () => {
  for (const p of proxies) p.restore();
  await Promise.allSettled(servers.map((s) => s.kill()));
  await Promise.allSettled(proxies.map((p) => p.close()));
  await ctx.cleanup();
});

/** A node whose Redis connections go through a proxy of its own. */
async function nodeBehindProxy(env: Record<string, string>): Promise<{ server: TestServer; proxy: TcpProxy }> {
  const target = new URL(BASE_REDIS_URL);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  proxies.push(proxy);
  const server = await startTestServer({ ...ctx.env, REDIS_URL: proxy.url(BASE_REDIS_URL), ...env });
  servers.push(server);
  return { server, proxy };
}

/** Resolve the exit code (or signal) of `server` once it has exited and its output is all read. Call before signalling it. */
function exitOf(server: TestServer): Promise<number | string> {
  return new Promise((resolve) => server.process.once('close', (code, signal) => resolve(code ?? signal!)));
}

test('while a node drains, /readyz answers 503 draining, never 200 again; it exits 0 once the drain completes', async () => {
  const { server, proxy } = await nodeBehindProxy({ REDIS_COMMAND_TIMEOUT_MS: '30000', SHUTDOWN_TIMEOUT_MS: '60000' });
  assert.equal(await readyz(server.url), [200, 'ready']);
  const exited = exitOf(server);
  proxy.stall();
  server.process.kill('SIGTERM');
  const answers: [number, string][] = [];
  await until(async () => {
    answers.push(await readyz(server.url));
    return answers.some(([, status]) => status === 'draining');
  }, '503 draining', 30_000);
  // Still draining while Redis holds it: the answer stays.
  assert.equal(await readyz(server.url), [503, 'draining']);
  proxy.restore();
  assert.is(await exited, 0, server.output().split('\n').slice(-10).join('\n'));
  const first = answers.findIndex(([, status]) => status === 'draining');
  // Before the signal was handled, a probe may have found Redis stalled (503 unavailable); never 200 after draining began.
  assert.ok(
    answers.slice(first).every(([status]) => status !== 200),
    `never ready again once draining: ${answers.map(([c, s]) => `${c} ${s}`).join(', ')}`,
  );
  assert.match(server.output(), '"msg":"shutdown complete"');
});

test('a drain that outlives SHUTDOWN_TIMEOUT_MS ends the process with exit 1, not before the deadline', async () => {
  const deadlineMs = 2000;
  const { server, proxy } = await nodeBehindProxy({ REDIS_COMMAND_TIMEOUT_MS: '60000', SHUTDOWN_TIMEOUT_MS: String(deadlineMs) });
  const exited = exitOf(server);
  proxy.stall();
  const signalledAt = Date.now();
  server.process.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 30_000).unref())]);
  const elapsed = Date.now() - signalledAt;
  assert.is(code, 1, server.output().split('\n').slice(-10).join('\n'));
  assert.ok(elapsed >= deadlineMs - 100, `not before the deadline (${elapsed} ms)`);
  assert.match(server.output(), '"msg":"graceful shutdown timed out"');
  assert.not.match(server.output(), '"msg":"shutdown complete"');
});

test('a second signal during the drain exits 1 at once, long before the deadline', async () => {
  const { server, proxy } = await nodeBehindProxy({ REDIS_COMMAND_TIMEOUT_MS: '60000', SHUTDOWN_TIMEOUT_MS: '120000' });
  const exited = exitOf(server);
  proxy.stall();
  server.process.kill('SIGTERM');
  await until(async () => (await readyz(server.url))[1] === 'draining', 'the first signal to start the drain', 30_000);
  server.process.kill('SIGINT');
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 30_000).unref())]);
  assert.is(code, 1, server.output().split('\n').slice(-10).join('\n'));
  assert.match(server.output(), '"msg":"second signal: exiting now"');
  assert.not.match(server.output(), '"msg":"graceful shutdown timed out"');
});

test.run();
