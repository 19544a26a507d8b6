import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('observability/admin');
const adminName = `admin_${randomBytes(4).toString('hex')}`;
let ctx: TestContext;
let server: TestServer;
const sockets: TestSocket[] = [];

test.before(async () => {
  ctx = createTestContext();
  server = await startTestServer({ ...ctx.env, FEED_ADMIN_USERS: adminName, NODE_ENV: 'test' });
});
test.after(async () => {
  for (const s of sockets) s.close();
  await server?.kill();
  await ctx.cleanup();
});

const overview = (token?: string) => fetch(`${server.url}/admin/overview`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

test('the admin overview refuses a request without an access token, with a bad one, and from a user who is not an admin', async () => {
  const none = await overview();
  assert.is(none.status, 401);
  assert.is(((await none.json()) as { error: { code: string } }).error.code, 'unauthorized');
  assert.is((await overview('not.a.token')).status, 401);
  const guest = await signInGuest(server.url);
  const forbidden = await overview(guest.accessToken);
  assert.is(forbidden.status, 403);
  assert.is(((await forbidden.json()) as { error: { code: string } }).error.code, 'forbidden');
});

test('an admin sees the live sockets and rooms of the node', async () => {
  const admin = await signUp(server.url, { username: adminName });
  const host = await signUp(server.url);
  const socket = await connect(server.url, { token: host.accessToken });
  sockets.push(socket);
  const created = await request(socket, 'room:create', { title: 'Watched' });
  assert.ok(created.ok, JSON.stringify(created));
  if (!created.ok) return;

  const res = await overview(admin.accessToken);
  assert.is(res.status, 200);
  assert.is(res.headers.get('cache-control'), 'no-store');
  const body = (await res.json()) as {
    feed: { archiveLagSeconds: number; archivePendingRooms: number; archiveDeadLetters: number; channels: number };
    sockets: { connected: number };
    rooms: { roomId: string; sockets: number }[];
    socketList: { id: string; userId: string; rooms: string[] }[];
  };
  assert.is(body.sockets.connected, 1);
  assert.is(typeof body.feed.archiveLagSeconds, 'number', 'the archive lag is shown');
  assert.ok(body.feed.archiveLagSeconds >= 0);
  assert.is(body.feed.archiveDeadLetters, 0);
  assert.equal(body.rooms, [{ roomId: created.data.room.id, sockets: 1 }]);
  const listed = body.socketList.find((s) => s.id === socket.id);
  assert.ok(listed, 'the socket is listed');
  assert.is(listed!.userId, host.user.id);
  assert.equal(listed!.rooms, [created.data.room.id]);
});

test.run();
