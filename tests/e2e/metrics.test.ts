import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { generateSigningJwk } from '../../server/auth/signing-keys.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('observability/metrics');
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
let ctx: TestContext;
let server: TestServer;
const sockets: TestSocket[] = [];

test.before(async () => {
  ctx = createTestContext();
  server = await startTestServer({ ...ctx.env, METRICS_TOKEN, LOG_LEVEL: 'debug' });
});
test.after(async () => {
  for (const s of sockets) s.close();
  await server?.kill();
  await ctx.cleanup();
});

const scrape = (headers: Record<string, string> = {}) => fetch(`${server.url}/metrics`, { headers });
const authorized = { authorization: `Bearer ${METRICS_TOKEN}` };

/** The value of one sample line (`name{labels} value`), or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

test('GET /metrics refuses a scrape without the configured bearer token', async () => {
  assert.is((await scrape()).status, 401);
  assert.is((await scrape({ authorization: 'Bearer wrong-token-wrong-token' })).status, 401);
});

test('GET /metrics exposes sockets, rooms, events, acks, cache, Redis and PostgreSQL latency, archive lag, event-loop lag and memory', async () => {
  const host = await signUp(server.url);
  const socket = await connect(server.url, { token: host.accessToken });
  sockets.push(socket);
  const created = await request(socket, 'room:create', { title: 'Metrics' });
  assert.ok(created.ok, JSON.stringify(created));
  // One refused event, so an error code shows up among the acks.
  const refused = await request(socket, 'room:join', { pin: 'not-a-pin' } as never);
  assert.not.ok(refused.ok);
  const guest = await signInGuest(server.url);
  const member = await connect(server.url, { token: guest.accessToken });
  sockets.push(member);
  if (created.ok) {
    // Presence is sent once per window (PRESENCE_BATCH_MS): wait for the host to get it.
    const presence = nextEvent(socket, 'room:presence');
    const joined = await request(member, 'room:join', { pin: created.data.room.pin });
    assert.ok(joined.ok, JSON.stringify(joined));
    await presence;
  }

  const res = await scrape(authorized);
  assert.is(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', 'text/plain');
  const text = await res.text();

  assert.is(sample(text, 'pinroom_sockets_connected'), 2);
  assert.is(sample(text, 'pinroom_rooms_live'), 1);
  assert.ok((sample(text, 'pinroom_socket_events_in_total', { event: 'room:create' }) ?? 0) >= 1, 'events in by type');
  assert.ok((sample(text, 'pinroom_socket_events_out_total', { event: 'room:presence' }) ?? 0) >= 1, 'events out by type');
  assert.ok((sample(text, 'pinroom_socket_acks_total', { event: 'room:create', code: 'ok' }) ?? 0) >= 1, 'ok acks');
  assert.ok((sample(text, 'pinroom_socket_acks_total', { event: 'room:join', code: 'bad_request' }) ?? 0) >= 1, 'acks by error code');
  assert.ok(sample(text, 'pinroom_cache_hits_total', { loader: 'room' }) !== undefined || sample(text, 'pinroom_cache_misses_total', { loader: 'room' }) !== undefined, 'cache counters');
  assert.match(text, /# TYPE pinroom_cache_hits_total counter/);
  assert.match(text, /# TYPE pinroom_cache_misses_total counter/);
  assert.ok((sample(text, 'pinroom_redis_command_duration_seconds_count', { command: 'evalsha' }) ?? 0) >= 1, 'Redis latency histogram');
  assert.ok((sample(text, 'pinroom_pg_query_duration_seconds_count', { kind: 'insert' }) ?? 0) >= 1, 'PostgreSQL latency histogram');
  assert.ok(sample(text, 'pinroom_feed_archive_lag') !== undefined, 'feed archive lag');
  assert.ok(sample(text, 'nodejs_eventloop_lag_seconds') !== undefined, 'event-loop lag');
  assert.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 0, 'process memory');
});

test('logs are JSON lines with request and socket ids, and never carry a token', async () => {
  const guest = await signInGuest(server.url);
  const socket = await connect(server.url, { token: guest.accessToken });
  sockets.push(socket);
  await fetch(`${server.url}/admin/overview`, { headers: { authorization: `Bearer ${guest.accessToken}` } });
  await scrape(authorized);
  const parsed = () =>
    server
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  // Wait for the lines (written as the request and the connection complete), not for a fixed time.
  await until(() => parsed().some((l) => l.msg === 'request' && typeof l.reqId === 'string' && l.path === '/admin/overview'), 'the request logged with its id');
  await until(() => parsed().some((l) => l.msg === 'socket connected' && l.socketId === socket.id), 'the socket logged with its id');
  const output = server.output();
  for (const secret of [guest.accessToken, guest.refreshToken, METRICS_TOKEN]) assert.not.ok(output.includes(secret), 'a secret reached the logs');
});

test('without METRICS_TOKEN, /metrics is open in development and not served in production', async () => {
  const open = await startTestServer({ ...ctx.env, NODE_ENV: 'development' });
  try {
    assert.is((await fetch(`${open.url}/metrics`)).status, 200);
  } finally {
    await open.kill();
  }
  const production = await startTestServer({
    ...ctx.env,
    NODE_ENV: 'production',
    CORS_ORIGINS: 'https://pinroom.example',
    AUTH_SIGNING_KEY: JSON.stringify(await generateSigningJwk()),
    DB_CREATE_IF_MISSING: 'true',
  });
  try {
    assert.is((await fetch(`${production.url}/metrics`)).status, 404);
    assert.is((await fetch(`${production.url}/metrics`, { headers: authorized })).status, 404);
  } finally {
    await production.kill();
  }
});

test.run();
