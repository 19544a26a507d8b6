/**
 * PostgreSQL unreachable (every connection of the node cut by a TCP proxy,
 * new ones refused) and its backends terminated (`pg_terminate_backend`):
 * reads that the cache can answer are answered (past their TTL, as stale
 * entries), writes answer `unavailable`, readiness names PostgreSQL, and
 * everything works again when it is back, without restarting the node.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { postJson, signInGuest, signUp } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { RAISED_USER_LIMITS, BASE_PG_URL, createTestContext, type TestContext } from '../support/context.ts';
import { codeOf, ok, readiness, sleep, until } from '../support/faults.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('faults/postgres');
const ROOM_TTL_SECONDS = 1;

let ctx: TestContext;
let proxy: TcpProxy;
let server: TestServer;
const sockets: TestSocket[] = [];
const open = async (token: string) => {
  const s = await connect(server.url, { token });
  sockets.push(s);
  return s;
};

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  const target = new URL(BASE_PG_URL);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  server = await startTestServer({
    ...ctx.env,
    DATABASE_URL: proxy.url(ctx.databaseUrl),
    DB_CONNECT_TIMEOUT_MS: '1000',
    DB_STATEMENT_TIMEOUT_MS: '2000',
    CACHE_ROOM_TTL_SECONDS: String(ROOM_TTL_SECONDS),
    CACHE_HARD_STALE_SECONDS: '300',
    SOCKET_EVENTS_PER_SECOND: '1000',
    ...RAISED_USER_LIMITS,
    AUTH_RATE_GUEST_IP: '1000/60',
    AUTH_RATE_REGISTER_IP: '1000/60',
  });
});

test.after(async () => {
  if (process.env.DEBUG_FAULTS) console.log(server?.output().split('\n').filter((l) => /"level":(40|50|60)/.test(l)).map((l) => l.slice(0, 900)).join('\n'));
  for (const s of sockets) s.close();
  proxy?.restore();
  await server?.stop();
  await proxy?.close();
  await ctx.cleanup();
});

test('with PostgreSQL unreachable, cached reads are served past their TTL, writes answer unavailable, readiness names postgres; all recover without a restart', async () => {
  const host = await signUp(server.url, { displayName: 'PG host' });
  const hostSocket = await open(host.accessToken);
  const { room } = ok(await request(hostSocket, 'room:create', { title: 'Cached room' }));
  const member = await signInGuest(server.url, 'PG member');
  const memberSocket = await open(member.accessToken);
  ok(await request(memberSocket, 'room:join', { pin: room.pin }));
  const waiting = await signInGuest(server.url, 'Signed in before the outage');
  const waitingSocket = await open(waiting.accessToken);
  assert.is((await fetch(`${server.url}/rooms/pin/${room.pin}`)).status, 200);

  proxy.cut();
  try {
    await duringOutage();
  } finally {
    proxy.restore();
  }
  await until(async () => (await readiness(server.url)) === 200, 'readiness 200 after PostgreSQL is back');
  ok(await request(hostSocket, 'room:create', { title: 'After the outage' }));
  ok(await request(waitingSocket, 'room:join', { pin: room.pin }));
  assert.is((await postJson(`${server.url}/auth/guest`, { displayName: 'New after outage' })).status, 201);

  /** Everything checked while PostgreSQL is cut off. */
  async function duringOutage(): Promise<void> {
    await until(async () => (await readiness(server.url)) === 503, 'readiness 503');
    const body = (await (await fetch(`${server.url}/readyz`)).json()) as { failed: string[] };
    assert.equal(body.failed, ['postgres'], 'readiness names PostgreSQL only');
    await sleep(ROOM_TTL_SECONDS * 1100 + 300); // the cached room is now past its TTL

    // Reads the cache can answer: the PIN lookup, and the feed's membership checks.
    const lookup = await fetch(`${server.url}/rooms/pin/${room.pin}`);
    assert.is(lookup.status, 200, 'the PIN lookup is served from the stale cache entry');
    assert.is(((await lookup.json()) as { roomId: string }).roomId, room.id);
    ok(await request(memberSocket, 'feed:subscribe', { roomId: room.id }));
    ok(await request(memberSocket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text: 'while PostgreSQL is down' }, clientMsgId: randomUUID() }));

    // Writes answer unavailable, never internal, and say they may be retried.
    const created = await request(hostSocket, 'room:create', { title: 'During the outage' }, 15_000);
    assert.is(codeOf(created), 'unavailable');
    assert.ok(!created.ok && created.error.retryable);
    assert.is(codeOf(await request(waitingSocket, 'room:join', { pin: room.pin }, 15_000)), 'unavailable', 'a join (a transaction) is refused');
    const guest = await postJson<{ error: { code: string } }>(`${server.url}/auth/guest`, { displayName: 'New during outage' });
    assert.is(guest.status, 503);
    assert.is(guest.body.error.code, 'unavailable');
    assert.is((await fetch(`${server.url}/healthz`)).status, 200, 'the node is alive');
  }
});

test('after pg_terminate_backend kills every connection of the node, requests answer typed errors at worst and then succeed, without a restart', async () => {
  const host = await signUp(server.url, { displayName: 'Terminated host' });
  const hostSocket = await open(host.accessToken);
  ok(await request(hostSocket, 'room:create', { title: 'Before the termination' }));

  const admin = new pg.Client({ connectionString: BASE_PG_URL });
  await admin.connect();
  try {
    // The node's backends, and only the node's: it reaches PostgreSQL through the proxy, so
    // they are the ones whose client port is one of the proxy's upstream ports (the test's
    // own pool connects directly and is left alone).
    const name = new URL(ctx.databaseUrl).pathname.slice(1);
    const ports = proxy.upstreamPorts();
    const { rows } = await admin.query<{ port: number; terminated: boolean }>(
      'select client_port as port, pg_terminate_backend(pid) as terminated from pg_stat_activity where datname = $1 and client_port = any($2::int[])',
      [name, ports],
    );
    assert.ok(rows.length > 0 && rows.every((r) => r.terminated), `terminated ${rows.length} of the node's backends (ports ${ports.join(', ')})`);
    const killed = rows.map((r) => r.port);
    await until(() => !proxy.upstreamPorts().some((p) => killed.includes(p)), 'the node\'s terminated connections to close');
  } finally {
    await admin.end();
  }

  const codes: string[] = [];
  for (let i = 0; i < 20; i++) {
    const ack = await request(hostSocket, 'room:create', { title: `After the termination ${i}` }, 15_000);
    codes.push(codeOf(ack));
    if (ack.ok) break;
    await sleep(200);
  }
  console.log(`  room:create after pg_terminate_backend: ${codes.join(', ')}`);
  assert.is(codes[codes.length - 1], 'ok', 'a write succeeds again');
  assert.ok(codes.every((c) => c === 'ok' || c === 'unavailable'), 'nothing but unavailable before that');
  assert.is((await readiness(server.url)), 200);
});

test.run();
