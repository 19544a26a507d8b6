import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { accountInDatabase, logIn, postJson, signInGuest, signUp } from '../support/auth.ts';
import { connect, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('observability/admin');
let ctx: TestContext;
let server: TestServer;
/** The administrator: an account that exists before the server starts, named by its id. */
let adminAccount: { id: string; username: string; password: string };
const sockets: TestSocket[] = [];

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  adminAccount = await accountInDatabase(ctx.db(), { username: `OpsAdmin_${Date.now().toString(36)}` });
  server = await startTestServer({ ...ctx.env, FEED_ADMIN_USERS: adminAccount.id, NODE_ENV: 'test' });
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

test('a username in FEED_ADMIN_USERS is refused at start-up, so nobody can become admin by registering it', async () => {
  const refused = await startTestServer({ ...ctx.env, FEED_ADMIN_USERS: 'opsadmin', NODE_ENV: 'test' }, { timeoutMs: 20_000 }).then(
    async (started) => {
      await started.kill();
      return null;
    },
    (err: Error) => err,
  );
  assert.ok(refused, 'the server does not start');
  assert.match(refused!.message, /exited early/);
  assert.match(refused!.message, /FEED_ADMIN_USERS/);
  assert.match(refused!.message, /user ids/);
});

test('an admin sees the live sockets and rooms of the node', async () => {
  const admin = await logIn(server.url, adminAccount.username, adminAccount.password);
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

test('only the configured user id is an admin: the same username in other letters cannot be registered, and other accounts are refused', async () => {
  const squat = await postJson(`${server.url}/auth/register`, { username: adminAccount.username.toLowerCase(), password: 'squatter-password-1' });
  assert.is(squat.status, 409, 'the admin\'s username is taken whatever its case');
  const other = await signUp(server.url, { username: `opsadmin_${Date.now().toString(36)}` });
  assert.is((await overview(other.accessToken)).status, 403);
  const otherSocket = await connect(server.url, { token: other.accessToken });
  sockets.push(otherSocket);
  const system = await request(otherSocket, 'feed:subscribe', { scope: 'system' });
  assert.is(!system.ok && system.error.code, 'forbidden');

  const admin = await logIn(server.url, adminAccount.username, adminAccount.password);
  assert.is((await overview(admin.accessToken)).status, 200);
  const adminSocket = await connect(server.url, { token: admin.accessToken });
  sockets.push(adminSocket);
  assert.ok((await request(adminSocket, 'feed:subscribe', { scope: 'system' })).ok, 'the admin follows the system feed');
  adminSocket.close();
  otherSocket.close();
});

test.run();
