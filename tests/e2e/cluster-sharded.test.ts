/**
 * `SOCKET_ADAPTER=sharded` (Redis 7 sharded pub/sub): the same cross-node
 * guarantees as the default adapter, on two node processes.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { postJson, signInGuest, signUp } from '../support/auth.ts';
import { connect, nextEvent, request, signalUntilHeard, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { ok } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('cluster/sharded-adapter');

let ctx: TestContext;
let nodes: TestServer[] = [];
const sockets: TestSocket[] = [];
const open = async (url: string, token: string) => {
  const s = await connect(url, { token });
  sockets.push(s);
  return s;
};

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  const env = { ...ctx.env, SOCKET_ADAPTER: 'sharded', AUTH_RATE_GUEST_IP: '1000/60' };
  nodes = await Promise.all([startTestServer(env), startTestServer(env)]);
});

test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled(nodes.map((n) => n.stop()));
  await ctx.cleanup();
});

test('with the sharded adapter, room broadcasts, signals, kicks and revocations cross nodes', async () => {
  const [a, b] = nodes as [TestServer, TestServer];
  const host = await signUp(a.url);
  const hostSocket = await open(a.url, host.accessToken);
  const { room } = ok(await request(hostSocket, 'room:create', { title: 'Sharded' }));
  const guest = await signInGuest(b.url, 'Sharded member');
  const member = await open(b.url, guest.accessToken);
  ok(await request(member, 'room:join', { pin: room.pin }));

  const updated = nextEvent(member, 'room:updated', (p) => p.room.status === 'live');
  ok(await request(hostSocket, 'room:start', { roomId: room.id }));
  await updated;
  const [signal] = await signalUntilHeard(member, [hostSocket], { roomId: room.id, type: 'wave', payload: {} });
  assert.is(signal!.from, guest.user.id);

  const kicked = nextEvent(member, 'room:kicked', (p) => p.roomId === room.id);
  ok(await request(hostSocket, 'room:kick', { roomId: room.id, userId: guest.user.id }));
  await kicked;

  const closed = nextEvent(member, 'auth:closed', (p) => p.code === 'session_revoked');
  assert.is((await postJson(`${a.url}/auth/logout`, { refreshToken: guest.refreshToken })).status, 204);
  await closed;
});

test.run();
