/**
 * `WORKERS=3`: one `npm start` process runs three full nodes behind one port
 * (node:cluster primary, @socket.io/sticky, the Redis adapter between workers).
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ack } from '../../shared/errors.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, disconnected, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('cluster/workers');
const WORKERS = 3;

let ctx: TestContext;
let server: TestServer;
const sockets: TestSocket[] = [];

function ok<T>(ack: Ack<T>): T {
  if (!ack.ok) throw new Error(`expected ok, got ${ack.error.code}: ${ack.error.message}`);
  return ack.data;
}

test.before(async () => {
  ctx = createTestContext();
  server = await startTestServer(
    { ...ctx.env, WORKERS: String(WORKERS), AUTH_RATE_GUEST_IP: '1000/60', AUTH_RATE_REGISTER_IP: '1000/60', PRESENCE_HEARTBEAT_MS: '500', PRESENCE_NODE_TIMEOUT_MS: '5000' },
    { timeoutMs: 90_000 },
  );
});

test.after(async () => {
  for (const s of sockets) s.close();
  await server?.kill();
  await ctx.cleanup();
});

test('three workers behind one port each run a node: long-polling sessions stay on their worker, and a room spans the workers', async () => {
  const nodesKey = `${ctx.keyPrefix}{presence}:nodes`;
  const end = Date.now() + 10_000;
  while ((await ctx.redis().zcard(nodesKey)) < WORKERS && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  assert.is(await ctx.redis().zcard(nodesKey), WORKERS, 'three node heartbeats in Redis');

  const host = await signUp(server.url, { displayName: 'Workers host' });
  const hostSocket = await connect(server.url, { token: host.accessToken });
  sockets.push(hostSocket);
  const { room } = ok(await request(hostSocket, 'room:create', { title: 'Workers', maxMembers: 50 }));

  // Polling-only clients: every request of a session must reach the worker holding it.
  const members: TestSocket[] = [];
  for (let i = 0; i < 9; i++) {
    const guest = await signInGuest(server.url, `Poll${i}`);
    const socket = await connect(server.url, { token: guest.accessToken, transports: i % 3 === 2 ? ['websocket'] : ['polling'] });
    sockets.push(socket);
    ok(await request(socket, 'room:join', { pin: room.pin }));
    members.push(socket);
  }
  const workersUsed = new Set(Object.keys(await ctx.redis().hgetall(`${ctx.keyPrefix}room:{${room.id}}:presence:sockets`)).map((f) => f.split('|')[0]));
  assert.ok(workersUsed.size >= 2, `the room's sockets sit on ${workersUsed.size} workers`);

  // Many round trips per polling session, then a broadcast that reaches everyone on every worker.
  for (let round = 0; round < 5; round++) {
    await Promise.all(members.map(async (s) => assert.ok((await request(s, 'feed:unsubscribe', { roomId: room.id })).ok)));
  }
  const updates = members.map((s) => nextEvent(s, 'room:updated', (p) => p.room.id === room.id, 15_000));
  ok(await request(hostSocket, 'room:start', { roomId: room.id }));
  for (const update of await Promise.all(updates)) assert.equal([update.room.id, update.room.status], [room.id, 'live'], 'every member, on every worker, saw the room go live');
  for (const s of members) assert.ok(s.connected, 'no polling session was lost to another worker');
});

/** One HTTP request on its own TCP connection (as a browser's polling transport may open), with a deadline. */
function rawHttp(method: string, url: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { 'content-type': 'text/plain;charset=UTF-8', 'content-length': String(Buffer.byteLength(body)) };
    const req = httpRequest(url, { method, agent: false, headers, timeout: 20_000 }, (res) => {
      let data = '';
      res.on('data', (chunk: Buffer) => (data += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: data }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within 20 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

test("a polling session's first request right after its handshake reaches the worker holding it, with a hundred handshakes at once", async () => {
  // Each session: the Engine.IO handshake, then at once a POST of a close packet ("1") naming its sid.
  // Routed to any worker but the one holding the session, the POST is refused "Session ID unknown".
  const refused: string[] = [];
  let sessions = 0;
  for (let round = 0; round < 10; round++) {
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        const handshake = await rawHttp('GET', `${server.url}/socket.io/?EIO=4&transport=polling`);
        assert.is(handshake.status, 200, handshake.body);
        const { sid } = JSON.parse(handshake.body.slice(1)) as { sid: string };
        const close = await rawHttp('POST', `${server.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, '1');
        sessions++;
        if (close.status !== 200) refused.push(`${close.status} ${close.body}`);
      }),
    );
  }
  assert.is(sessions, 1000);
  assert.equal(refused, [], `${refused.length} of ${sessions} first requests went to another worker`);
});

/** Pids of the primary's worker processes (its children running server/main.ts). */
function workerPids(): number[] {
  const primary = server.process.pid!;
  if (server.process.exitCode !== null || server.process.signalCode !== null) {
    throw new Error(`the primary exited (${server.process.signalCode ?? `code ${server.process.exitCode}`}); its output ends:\n${server.output().slice(-4000)}`);
  }
  const children = readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return children.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('server/main.ts') && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false; // gone meanwhile
    }
  });
}

test('a worker killed with -9 is replaced by the primary: a connection handed to the replacement while it starts is served once its node is up', async () => {
  const nodesKey = `${ctx.keyPrefix}{presence}:nodes`;
  const before = workerPids();
  assert.is(before.length, WORKERS, `${WORKERS} worker processes`);
  const nodesBefore = new Set(await ctx.redis().zrange(nodesKey, 0, -1));
  const readyBefore = (server.output().match(/"msg":"pinroom worker ready"/g) ?? []).length;
  const host = await signUp(server.url, { displayName: 'After the crash' });
  const victim = before[1]!;
  process.kill(victim, 'SIGKILL');

  await until(() => {
    const now = workerPids();
    return now.length === WORKERS && !now.includes(victim);
  }, 'a replacement worker process', 60_000);
  const replacement = workerPids().find((pid) => !before.includes(pid))!;
  // The primary balances over every forked worker: the replacement, holding no connection, takes
  // the next one at once, while its node is still starting. It must be kept and served, not dropped.
  const connecting = connect(server.url, { token: host.accessToken, timeoutMs: 60_000 });
  assert.is((server.output().match(/"msg":"pinroom worker ready"/g) ?? []).length, readyBefore, 'the replacement was not ready yet when the client connected');
  const hostSocket = await connecting;
  sockets.push(hostSocket);
  assert.match(server.output(), /worker died; starting a replacement/);
  const newNode = (await ctx.redis().zrange(nodesKey, 0, -1)).find((n) => !nodesBefore.has(n));
  assert.ok(newNode, "the replacement node's heartbeat");

  const { room } = ok(await request(hostSocket, 'room:create', { title: 'Replaced', maxMembers: 50 }));
  const fields = Object.keys(await ctx.redis().hgetall(`${ctx.keyPrefix}room:{${room.id}}:presence:sockets`));
  assert.equal(fields.map((f) => f.split('|')[0]), [newNode], `the connection is served by the replacement worker (pid ${replacement})`);
});

test('SIGTERM to the primary drains every worker and exits 0; clients see a transport close and may reconnect elsewhere', async () => {
  const guest = await signInGuest(server.url, 'Drained');
  const polling = await connect(server.url, { token: guest.accessToken, transports: ['polling'] });
  const ws = await connect(server.url, { token: guest.accessToken });
  sockets.push(polling, ws);
  const gone = [disconnected(polling, 20_000), disconnected(ws, 20_000)];
  const code = await server.stop('SIGTERM');
  assert.is(code, 0, server.output().split('\n').slice(-20).join('\n'));
  assert.equal(await Promise.all(gone), ['transport close', 'transport close']);
  assert.match(server.output(), /all workers drained/);
});

test.run();
