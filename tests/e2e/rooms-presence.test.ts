import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ack } from '../../shared/errors.ts';
import type { RoomView } from '../../shared/schemas.ts';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, nextEvent, request, type TestSocket } from '../support/client.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('rooms/presence-e2e');
const HEARTBEAT_MS = 300;
const NODE_TIMEOUT_MS = 1500;
const GRACE_MS = 2500;
const SWEEP_MS = 200;
const ENV = {
  AUTH_RATE_REGISTER_IP: '1000/60',
  AUTH_RATE_GUEST_IP: '1000/60',
  PRESENCE_HEARTBEAT_MS: String(HEARTBEAT_MS),
  PRESENCE_NODE_TIMEOUT_MS: String(NODE_TIMEOUT_MS),
  ROOM_HOST_GRACE_MS: String(GRACE_MS),
  ROOM_SWEEP_INTERVAL_MS: String(SWEEP_MS),
};
/**
 * Slack on top of the configured bounds: generous, because these waits check
 * that the event comes, not how fast (only a failing wait takes it all; under
 * a loaded Redis Cluster pass a killed host's room took over 9 s to end).
 */
const SLACK_MS = 30_000;

let ctx: TestContext;
const servers: TestServer[] = [];
const sockets: TestSocket[] = [];

async function server(overrides: Record<string, string> = {}): Promise<TestServer> {
  const s = await startTestServer({ ...ctx.env, ...ENV, ...overrides });
  servers.push(s);
  return s;
}
async function open(url: string, token: string): Promise<TestSocket> {
  const socket = await connect(url, { token });
  sockets.push(socket);
  return socket;
}
function data<T>(ack: Ack<T>): T {
  if (!ack.ok) throw new Error(`expected ok, got ${JSON.stringify(ack.error)}`);
  return ack.data;
}
async function createRoom(socket: TestSocket, title: string): Promise<RoomView> {
  return data(await request(socket, 'room:create', { title })).room;
}
/** True when no `room:ended` arrives on `socket` for `ms`. */
function noEnd(socket: TestSocket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const listener = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      socket.off('room:ended', listener);
      resolve(true);
    }, ms);
    socket.once('room:ended', listener);
  });
}

test.before(async () => {
  ctx = createTestContext();
  // Created up front: two servers starting at once would race to create the database.
  await ctx.migrate();
});
test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled(servers.map((s) => s.stop()));
  await ctx.cleanup();
});

test('presence loses the members of a node killed with -9 within the heartbeat window, once per user', async () => {
  const [a, b] = await Promise.all([server(), server()]);
  const host = await signUp(a.url, { displayName: 'Host' });
  const hostSocket = await open(a.url, host.accessToken);
  const room = await createRoom(hostSocket, 'Crash');

  const mia = await signInGuest(b.url, 'Mia');
  const tab1 = await open(b.url, mia.accessToken);
  const tab2 = await open(b.url, mia.accessToken);
  const online = nextEvent(hostSocket, 'room:presence', (p) => p.changes.some((c) => c.userId === mia.user.id && c.online));
  data(await request(tab1, 'room:join', { pin: room.pin }));
  data(await request(tab2, 'room:join', { pin: room.pin }));
  await online;
  const tabs = await ctx.redis().hget(`${ctx.keyPrefix}room:{${room.id}}:presence:users`, mia.user.id);
  assert.is(tabs?.split(' ').length, 2, 'two tabs, one user');
  // The node id of b, from the presence entry of one of Mia's sockets (fields are `<node>|<socket id>`).
  const nodeB = Object.keys(await ctx.redis().hgetall(`${ctx.keyPrefix}room:{${room.id}}:presence:sockets`))
    .find((f) => f.endsWith(`|${tab1.id}`))!
    .split('|')[0]!;

  const changes: boolean[] = [];
  hostSocket.on('room:presence', (p) => p.changes.filter((c) => c.userId === mia.user.id).forEach((c) => changes.push(c.online)));
  const offline = nextEvent(hostSocket, 'room:presence', (p) => p.changes.some((c) => c.userId === mia.user.id && !c.online), NODE_TIMEOUT_MS + 2 * HEARTBEAT_MS + SLACK_MS);
  const killedAt = Date.now();
  await b.kill();
  await offline;
  const elapsed = Date.now() - killedAt;
  console.log(`  killed node's member offline after ${elapsed} ms (timeout ${NODE_TIMEOUT_MS} ms, heartbeat ${HEARTBEAT_MS} ms)`);
  // Announcements come from the purge of the dead node; once no node lists it any more,
  // none can follow. A later presence change (a new member on the survivor) then marks the end.
  await until(async () => (await ctx.redis().zscore(`${ctx.keyPrefix}{presence}:nodes`, nodeB)) === null, 'the dead node to be purged', NODE_TIMEOUT_MS + SLACK_MS);
  const marker = await signInGuest(a.url, 'Marker');
  const markerSeen = nextEvent(hostSocket, 'room:presence', (p) => p.changes.some((c) => c.userId === marker.user.id));
  data(await request(await open(a.url, marker.accessToken), 'room:join', { pin: room.pin }));
  await markerSeen;
  assert.equal(changes, [false], 'announced offline once');
  assert.is(await ctx.redis().hget(`${ctx.keyPrefix}room:{${room.id}}:presence:users`, mia.user.id), null);
  const fields = Object.keys(await ctx.redis().hgetall(`${ctx.keyPrefix}room:{${room.id}}:presence:sockets`));
  assert.equal(fields.filter((f) => f.startsWith(`${nodeB}|`)), [], 'no socket of the dead node is left');
  assert.is(fields.length, 2, 'the host\'s and the marker\'s sockets are');
  const members = data(await request(hostSocket, 'room:members', { roomId: room.id })).members;
  assert.equal(
    members.map((m) => [m.name, m.online]),
    [
      ['Host', true],
      ['Mia', false],
      ['Marker', true],
    ],
  );
});

test('a host who drops and comes back within the grace (on another node) keeps the room; one who does not, ends it', async () => {
  // A grace with room for the way back (connect, session check and join on another node) on a loaded machine.
  const grace = 8000;
  const [a, c] = await Promise.all([server({ ROOM_HOST_GRACE_MS: String(grace) }), server({ ROOM_HOST_GRACE_MS: String(grace) })]);
  const host = await signUp(a.url, { displayName: 'Gail' });
  const guest = await signInGuest(a.url, 'Watcher');
  const hostSocket = await open(a.url, host.accessToken);
  const watcher = await open(a.url, guest.accessToken);
  const room = await createRoom(hostSocket, 'Grace');
  data(await request(watcher, 'room:join', { pin: room.pin }));

  // Drop, and come back on the other node within the grace: the room lives on.
  const hostOffline = nextEvent(watcher, 'room:presence', (p) => p.changes.some((x) => x.userId === host.user.id && !x.online));
  hostSocket.close();
  await hostOffline;
  await new Promise((r) => setTimeout(r, 1000));
  const back = await open(c.url, host.accessToken);
  const rejoined = data(await request(back, 'room:join', { pin: room.pin }));
  assert.is(rejoined.role, 'host', 'the host keeps the role');
  assert.ok(await noEnd(watcher, grace + 4 * SWEEP_MS + 1000), 'the room did not end');
  assert.is((await fetch(`${a.url}/rooms/pin/${room.pin}`)).status, 200);

  // Drop and stay away: the room ends by itself, with host_left, after the grace.
  const ended = nextEvent(watcher, 'room:ended', () => true, grace + SLACK_MS);
  const droppedAt = Date.now();
  back.close();
  assert.equal(await ended, { roomId: room.id, reason: 'host_left' });
  const elapsed = Date.now() - droppedAt;
  assert.ok(elapsed >= grace - 100, `not before the grace ran out (${elapsed} ms)`);
  assert.is((await fetch(`${a.url}/rooms/pin/${room.pin}`)).status, 404);
  assert.is(await ctx.redis().get(`${ctx.keyPrefix}pin:${room.pin}`), `ended:${room.id}`);
  // The node that purges a dead node applies its own grace: these two must not take part in the next test.
  await Promise.all([a.stop(), c.stop()]);
});

test('the grace of a host whose node was killed runs on the surviving node and ends the room', async () => {
  const [a, doomed] = [servers.find((s) => s.process.exitCode === null && s.process.signalCode === null)!, await server()];
  const host = await signUp(doomed.url, { displayName: 'Doomed' });
  const guest = await signInGuest(a.url, 'Survivor');
  const hostSocket = await open(doomed.url, host.accessToken);
  const survivor = await open(a.url, guest.accessToken);
  const room = await createRoom(hostSocket, 'Doomed');
  data(await request(survivor, 'room:join', { pin: room.pin }));
  const ended = nextEvent(survivor, 'room:ended', () => true, NODE_TIMEOUT_MS + 2 * HEARTBEAT_MS + GRACE_MS + SLACK_MS);
  const killedAt = Date.now();
  await doomed.kill();
  assert.equal(await ended, { roomId: room.id, reason: 'host_left' });
  const elapsed = Date.now() - killedAt;
  console.log(`  room of a killed host's node ended after ${elapsed} ms (node timeout ${NODE_TIMEOUT_MS} + grace ${GRACE_MS} ms)`);
  assert.ok(elapsed >= GRACE_MS, `not before the grace (${elapsed} ms)`);
});

test.run();
