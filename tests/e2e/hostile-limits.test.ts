/**
 * Hostile clients against one real server: foreign origins, too many
 * connections from one address, slow headers, handshakes that never join,
 * oversized frames, event floods. Each offender is refused or disconnected;
 * the server stays up and a well-behaved client keeps being answered.
 */
import { randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signInGuest } from '../support/auth.ts';
import { connect, connectError, disconnected, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { engineUrl, openRawSocket, openTcp, type RawSocket } from '../support/raw-socket.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('hostile/limits');
const ALLOWED_ORIGIN = 'http://pinroom.example';
const CAP = 20;
const HEADERS_TIMEOUT_MS = 1000;
const CONNECT_TIMEOUT_MS = 1000;
const MAX_PAYLOAD = 65_536;
const EVENTS_PER_SECOND = 20;
const DISCONNECT_PER_SECOND = 100;
/** Bound on how long the server may take to act on a configured timeout on a loaded machine. */
const SLACK_MS = 8000;

let ctx: TestContext;
let server: TestServer;
let token: string;
/** A well-behaved client that must keep being answered throughout. */
let bystander: TestSocket;
const sockets: TestSocket[] = [];
const raws: RawSocket[] = [];

async function bystanderAnswers(): Promise<void> {
  const ack = await request(bystander, 'feed:unsubscribe', { roomId: randomUUID() });
  assert.ok(ack.ok, `the bystander is answered: ${JSON.stringify(ack)}`);
  assert.is((await fetch(`${server.url}/healthz`)).status, 200);
}

/** Each test speaks from its own address (X-Forwarded-For, TRUST_PROXY=1), so caps do not interfere. */
let lastOctet = 10;
const newAddress = () => `198.51.100.${++lastOctet}`;

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  server = await startTestServer({
    ...ctx.env,
    CORS_ORIGINS: ALLOWED_ORIGIN,
    TRUST_PROXY: '1',
    SOCKET_MAX_CONNECTIONS_PER_ADDRESS: String(CAP),
    HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    SOCKET_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
    WS_MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD),
    SOCKET_EVENTS_PER_SECOND: String(EVENTS_PER_SECOND),
    SOCKET_DISCONNECT_EVENTS_PER_SECOND: String(DISCONNECT_PER_SECOND),
    // One session's sockets stand for many clients here; the per-session cap has its own test (abuse-limits).
    SESSION_MAX_SOCKETS: '1000',
    AUTH_RATE_GUEST_IP: '1000/60',
  });
  token = (await signInGuest(server.url, 'Hostile')).accessToken;
  bystander = await connect(server.url, { token, extraHeaders: { 'x-forwarded-for': '192.0.2.1' } });
  sockets.push(bystander);
});

test.after(async () => {
  for (const s of sockets) s.close();
  for (const r of raws) r.close();
  await server?.stop();
  await ctx.cleanup();
});

test('a handshake with a foreign Origin is refused for WebSocket and for polling; the allowed origin and no Origin connect', async () => {
  const foreign = 'https://attacker.example';
  const wsRefused = (await openRawSocket(server.url, { origin: foreign }).then(
    (r) => {
      raws.push(r);
      return null;
    },
    (err: Error & { status?: number }) => err,
  )) as (Error & { status?: number }) | null;
  assert.ok(wsRefused, 'the WebSocket upgrade with a foreign Origin is refused');
  // Engine.IO refuses an upgrade with 400 (and its reason), a polling request with 403.
  assert.is(wsRefused!.status, 400);

  const polling = await fetch(engineUrl(server.url, 'polling'), { headers: { origin: foreign } });
  assert.is(polling.status, 403, 'the polling handshake with a foreign Origin is refused');
  await polling.body?.cancel();

  // socket.io-client with a forged Origin (what a cross-site page would carry), both transports:
  // refused by the server (400 upgrade, 403 polling), not a client timeout.
  const ws = (await connectError(server.url, { token, transports: ['websocket'], extraHeaders: { origin: foreign } })) as Error & { description?: { message?: string } };
  assert.equal([ws.message, ws.description?.message], ['websocket error', 'Unexpected server response: 400'], 'websocket: the upgrade is refused');
  const poll = (await connectError(server.url, { token, transports: ['polling'], extraHeaders: { origin: foreign } })) as Error & { description?: unknown };
  assert.equal([poll.message, poll.description], ['xhr poll error', 403], 'polling: the handshake is refused');

  const allowedWs = await openRawSocket(server.url, { origin: ALLOWED_ORIGIN, token });
  raws.push(allowedWs);
  assert.ok(allowedWs.isOpen(), 'the allowed origin connects over WebSocket');
  const allowedPolling = await fetch(engineUrl(server.url, 'polling'), { headers: { origin: ALLOWED_ORIGIN } });
  assert.is(allowedPolling.status, 200);
  assert.match(await allowedPolling.text(), /^0\{/);
  const noOrigin = await openRawSocket(server.url, { token });
  raws.push(noOrigin);
  assert.ok(noOrigin.isOpen(), 'a non-browser client (no Origin) connects');
  allowedWs.close();
  noOrigin.close();
  await bystanderAnswers();
});

test('one address is held to the per-address connection cap, even when it opens them all at once; freed slots and other addresses still connect', async () => {
  const address = newAddress();
  const headers = { 'x-forwarded-for': address };
  // All at once: handshakes that race past the first check are closed as soon as they are counted,
  // before their Socket.IO CONNECT is answered. Each one that is answered must stay: an acked
  // round trip on each proves it is open now, with no time window involved.
  const attempts = await Promise.allSettled(Array.from({ length: CAP + 15 }, () => openRawSocket(server.url, { headers, token, timeoutMs: 15_000 })));
  const opened = attempts.filter((a): a is PromiseFulfilledResult<RawSocket> => a.status === 'fulfilled').map((a) => a.value);
  raws.push(...opened);
  const answered = await Promise.all(
    opened.map(async (r, i) => {
      r.send(`42${i}["feed:unsubscribe",{"roomId":"${randomUUID()}"}]`);
      return r.next((f) => typeof f === 'string' && f.startsWith(`43${i}[`), 15_000).then(
        () => true,
        () => false,
      );
    }),
  );
  const stillOpen = opened.filter((_, i) => answered[i]);
  assert.is(opened.length, CAP, `exactly ${CAP} were let in (refused ${attempts.length - opened.length})`);
  assert.is(stillOpen.length, CAP, `and all ${CAP} stay open`);

  // At the cap: the next one is refused before a session exists.
  const refused = (await openRawSocket(server.url, { headers }).catch((err: Error & { status?: number }) => err)) as Error & { status?: number };
  assert.is(refused.status, 400, 'the upgrade is refused at the cap');
  const polling = await fetch(engineUrl(server.url, 'polling'), { headers });
  assert.is(polling.status, 403, 'polling handshakes count against the same cap');
  await polling.body?.cancel();

  // Another address is not affected.
  const other = await openRawSocket(server.url, { headers: { 'x-forwarded-for': newAddress() } });
  raws.push(other);
  assert.ok(other.isOpen());

  // A freed slot can be used again.
  stillOpen[0]!.close();
  await stillOpen[0]!.closed;
  let again: RawSocket | undefined;
  for (let i = 0; i < 50 && !again; i++) {
    again = await openRawSocket(server.url, { headers }).catch(() => undefined);
    if (!again) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(again, 'a slot freed by a close is available again');
  raws.push(again!);
  for (const r of [...stillOpen, again!, other]) r.close();
  await bystanderAnswers();
});

test('request headers that trickle in slower than HTTP_HEADERS_TIMEOUT_MS are cut off', async () => {
  const socket = await openTcp(server.url);
  let received = '';
  socket.on('data', (chunk) => (received += chunk.toString()));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write('GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: pinroom\r\n');
  const started = Date.now();
  let writes = 0;
  const drip = setInterval(() => {
    if (!socket.destroyed) socket.write(`X-Slow-${writes++}: a\r\n`);
  }, 200);
  const outcome = await Promise.race([closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), HEADERS_TIMEOUT_MS + SLACK_MS))]);
  clearInterval(drip);
  socket.destroy();
  assert.is(outcome, 'closed', 'the slow connection was closed');
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= HEADERS_TIMEOUT_MS - 100, `not before the timeout (${elapsed} ms)`);
  assert.match(received, /^HTTP\/1\.1 408/, 'answered 408 Request Timeout');
  await bystanderAnswers();
});

test('an Engine.IO connection that never joins the namespace is closed after SOCKET_CONNECT_TIMEOUT_MS', async () => {
  const raw = await openRawSocket(server.url, { headers: { 'x-forwarded-for': newAddress() } });
  raws.push(raw);
  const started = Date.now();
  const outcome = await Promise.race([raw.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open'), CONNECT_TIMEOUT_MS + SLACK_MS))]);
  assert.is(outcome, 'closed');
  assert.ok(Date.now() - started >= CONNECT_TIMEOUT_MS - 100, 'not before the timeout');
});

test('a 10 MB frame closes only the connection that sent it (WebSocket 1009); a 10 MB polling body is refused with 413', async () => {
  const raw = await openRawSocket(server.url, { token, headers: { 'x-forwarded-for': newAddress() } });
  raws.push(raw);
  const big = `42${JSON.stringify(['feed:publish', { roomId: randomUUID(), text: 'x'.repeat(10 * 1024 * 1024) }])}`;
  raw.send(big);
  const { code } = await raw.closed;
  assert.is(code, 1009, 'closed with 1009 Message Too Big');

  // The same through socket.io-client: its transport is closed, the bystander is not.
  const client = await connect(server.url, { token, extraHeaders: { 'x-forwarded-for': newAddress() } });
  sockets.push(client);
  const gone = disconnected(client, 10_000);
  client.emit('feed:publish', { roomId: randomUUID(), type: 'chat.message', payload: { text: 'y'.repeat(10 * 1024 * 1024) }, clientMsgId: 'big' } as never, () => undefined);
  assert.is(await gone, 'transport close');

  // Polling: the POST body over the limit is answered 413 and dropped unread past the limit.
  const handshake = await fetch(engineUrl(server.url, 'polling'), { headers: { 'x-forwarded-for': newAddress() } });
  const sid = (JSON.parse((await handshake.text()).slice(1)) as { sid: string }).sid;
  const post = await fetch(`${engineUrl(server.url, 'polling')}&sid=${sid}`, { method: 'POST', body: `4${'z'.repeat(10 * 1024 * 1024)}`, headers: { 'content-type': 'text/plain' } });
  assert.is(post.status, 413);
  await post.body?.cancel();

  assert.ok(bystander.connected, 'the bystander stays connected');
  await bystanderAnswers();
});

test('a socket flooding events gets rate_limited, then past the hard limit is disconnected; unknown event names count too', async () => {
  for (const event of ['feed:unsubscribe', 'no:such-event']) {
    const flooder = await connect(server.url, { token, extraHeaders: { 'x-forwarded-for': newAddress() } });
    sockets.push(flooder);
    const emit = flooder.emit as (e: string, p: unknown, ack: (r: { ok: boolean; error?: { code: string } }) => void) => void;
    if (event === 'feed:unsubscribe') {
      // A burst over the soft limit, under the hard one: served, then rate_limited, still connected.
      const acks = await Promise.all(
        Array.from({ length: EVENTS_PER_SECOND * 2 }, () => new Promise<string>((resolve) => emit.call(flooder, event, { roomId: randomUUID() }, (r) => resolve(r.ok ? 'ok' : r.error!.code)))),
      );
      assert.ok(acks.includes('ok'), 'the first events were served');
      assert.ok(acks.includes('rate_limited'), 'then refused with rate_limited');
      assert.ok(flooder.connected, 'a burst is not a flood');
    }
    const notice = nextEvent(flooder, 'server:error', (n) => n.error.code === 'rate_limited' && n.event === '*', 10_000);
    const gone = disconnected(flooder, 10_000);
    for (let i = 0; i < DISCONNECT_PER_SECOND * 3; i++) emit.call(flooder, event, { roomId: randomUUID() }, () => undefined);
    const told = await notice;
    assert.match(told.error.message, 'disconnected');
    assert.is(await gone, 'io server disconnect', `${event}: disconnected by the server, no automatic reconnect`);
  }
  assert.ok(bystander.connected);
  await bystanderAnswers();
});

test.run();
