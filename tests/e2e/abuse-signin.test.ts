/**
 * Sign-in under attack: a login flood from many addresses and usernames
 * passes the per-address limits, so the node bounds the password hashes in
 * flight (the rest wait briefly or get `rate_limited`) and keeps answering
 * its sockets; failed logins of one account from many addresses start a
 * doubling backoff (at its defaults). The latency comparison (socket p99
 * under a flood against idle) is a row of the benchmark (bench/scenarios/auth.ts).
 */
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { postJson, signInGuest, signUp, type HttpResult } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('abuse/sign-in');
const CONCURRENCY = 1;
const QUEUE = 2;
/** First backoff wait: long enough that the attempts after the tenth, each behind a scrypt hash of up to a second on a loaded machine, fall inside it. */
const FIRST_WAIT_MS = 3000;
let ctx: TestContext;
let server: TestServer;
const sockets: TestSocket[] = [];

let nextAddress = 0;
/** A new client address for each request, as a botnet would have (TRUST_PROXY=1). */
const fresh = () => ({ 'x-forwarded-for': `198.18.${Math.floor(++nextAddress / 250)}.${nextAddress % 250}` });
type ErrorBody = { error: { code: string; message: string; retryAfterMs?: number } };
const login = (username: string, password: string, headers = fresh()) => postJson<ErrorBody>(`${server.url}/auth/login`, { username, password }, headers);

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
}

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  server = await startTestServer({ ...ctx.env, TRUST_PROXY: '1', AUTH_HASH_CONCURRENCY: String(CONCURRENCY), AUTH_HASH_QUEUE: String(QUEUE), AUTH_LOGIN_BACKOFF_FIRST_MS: String(FIRST_WAIT_MS) });
});

test.after(async () => {
  for (const s of sockets) s.close();
  await server?.stop();
  await ctx.cleanup();
});

test('a login flood runs at most AUTH_HASH_CONCURRENCY hashes at once, refuses the overflow with rate_limited, and sockets keep being answered', async () => {
  const guest = await signInGuest(server.url, 'Bystander');
  const socket = await connect(server.url, { token: guest.accessToken });
  sockets.push(socket);

  let flooding = true;
  const running: number[] = [];
  const acks: string[] = [];
  const watch = (async () => {
    while (flooding) running.push(await metric('pinroom_auth_hashes{state="running"}'));
  })();
  const bystander = (async () => {
    while (flooding) {
      const ack = await request(socket, 'feed:unsubscribe', { roomId: '00000000-0000-4000-8000-000000000000' }, 10_000);
      acks.push(ack.ok ? 'ok' : ack.error.code);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  // Unknown usernames from fresh addresses: no per-address or per-account limit applies, every attempt wants a hash.
  const results: HttpResult<ErrorBody>[] = await Promise.all(Array.from({ length: 30 }, () => login(`nobody_${randomBytes(5).toString('hex')}`, 'wrong-password')));
  flooding = false;
  await Promise.all([watch, bystander]);

  const codes = results.map((r) => `${r.status} ${r.body.error.code}`);
  assert.ok(codes.every((c) => c === '401 invalid_credentials' || c === '429 rate_limited'), `only these answers: ${[...new Set(codes)].join(', ')}`);
  const refused = results.filter((r) => r.status === 429);
  assert.ok(refused.length > 0, 'the overflow was refused');
  assert.ok(results.some((r) => r.status === 401), 'the admitted ones were checked');
  assert.ok(refused.every((r) => Number(r.headers.get('retry-after')) >= 1 && r.body.error.retryAfterMs! >= 1000), 'refusals say when to retry');
  assert.ok(running.length > 0 && Math.max(...running) <= CONCURRENCY, `hashes running never above ${CONCURRENCY} (samples: ${running.join(' ')})`);
  assert.ok((await metric('pinroom_auth_hash_refusals_total{reason="queue_full"}')) >= 1, 'refusals are counted');
  assert.ok(acks.length > 0 && acks.every((c) => c === 'ok'), `the socket kept being answered during the flood: ${acks.join(' ')}`);
});

test('failed logins of one account from many addresses start a doubling backoff that refuses even the right password; a success resets it', async () => {
  const account = await signUp(server.url);
  // Ten failures (the default before the backoff), each from another address: no per-address limit is involved.
  for (let i = 0; i < 10; i++) assert.is((await login(account.username, 'not-the-password')).status, 401);
  const early = await login(account.username, 'not-the-password');
  assert.is(early.status, 429, 'the 11th attempt, from a new address, waits');
  assert.match(early.body.error.message, /this account/);
  assert.ok(early.body.error.retryAfterMs! > 0 && early.body.error.retryAfterMs! <= FIRST_WAIT_MS, `the first wait is at most AUTH_LOGIN_BACKOFF_FIRST_MS: ${early.body.error.retryAfterMs}`);
  const right = await login(account.username, account.password);
  assert.is(right.status, 429, 'the right password waits too: the backoff is decided before any hash');

  await new Promise((r) => setTimeout(r, (right.body.error.retryAfterMs ?? FIRST_WAIT_MS) + 50));
  assert.is((await login(account.username, 'still-wrong')).status, 401, 'after the wait, one attempt');
  const doubled = await login(account.username, account.password);
  assert.is(doubled.status, 429, 'then the wait doubles');
  assert.ok(doubled.body.error.retryAfterMs! > FIRST_WAIT_MS && doubled.body.error.retryAfterMs! <= 2 * FIRST_WAIT_MS, `second wait up to twice the first: ${doubled.body.error.retryAfterMs}`);
  await new Promise((r) => setTimeout(r, doubled.body.error.retryAfterMs! + 50));
  assert.is((await login(account.username, account.password)).status, 200, 'the right password after the wait signs in');
  assert.is((await login(account.username, 'wrong-again')).status, 401, 'and resets the backoff');
  assert.is((await login(account.username, account.password)).status, 200);
});

test.run();
