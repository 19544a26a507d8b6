/**
 * `WORKERS=3`: one `npm start` process runs three full nodes behind one port
 * (node:cluster primary, @socket.io/sticky, the Redis adapter between workers).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ack } from '../../shared/errors.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, disconnected, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
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
  const updates = members.map((s) => nextEvent(s, 'room:updated', (p) => p.room.status === 'live'));
  ok(await request(hostSocket, 'room:start', { roomId: room.id }));
  assert.is((await Promise.all(updates)).length, members.length);
  for (const s of members) assert.ok(s.connected, 'no polling session was lost to another worker');
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
