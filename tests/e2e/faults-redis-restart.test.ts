/**
 * Redis restarted under traffic, on a redis-server this test owns: both nodes
 * stay up, `/readyz` is 503 while Redis is gone and 200 after, Socket.IO
 * connections survive, the adapter's subscriptions and the feed tails come
 * back by themselves, and feeds either resume without loss (Redis came back
 * with its data) or answer `recovered: false` (it came back empty).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signInGuest, signUp } from '../support/auth.ts';
import { connect, nextEvent, request, type TestSocket } from '../support/client.ts';
import { RAISED_USER_LIMITS, createTestContext, type TestContext } from '../support/context.ts';
import { assertExactlyOnceInOrder, codeOf, feedFollower, ok, readiness, sleep, until } from '../support/faults.ts';
import { startRedisServer, type OwnedRedis } from '../support/redis-server.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('faults/redis-restart');

let ctx: TestContext;
let redis: OwnedRedis;
let nodes: TestServer[] = [];
const sockets: TestSocket[] = [];
const track = (s: TestSocket) => sockets.push(s);

test.before(async () => {
  redis = await startRedisServer();
  ctx = createTestContext({ REDIS_URL: redis.url });
  await ctx.migrate();
  const env = {
    ...ctx.env,
    REDIS_COMMAND_TIMEOUT_MS: '500',
    SOCKET_EVENTS_PER_SECOND: '10000',
    ...RAISED_USER_LIMITS,
    PRESENCE_HEARTBEAT_MS: '500',
    PRESENCE_NODE_TIMEOUT_MS: '10000',
    AUTH_RATE_GUEST_IP: '1000/60',
    AUTH_RATE_REGISTER_IP: '1000/60',
  };
  nodes = await Promise.all([startTestServer(env), startTestServer(env)]);
});

test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled(nodes.map((n) => n.stop()));
  await ctx.cleanup().catch(() => undefined);
  await redis.dispose();
});

/** A host on node 0, a follower on node 1, and a publishing loop from the host that counts what was acknowledged. */
async function scene(title: string) {
  const host = await signUp(nodes[0]!.url, { displayName: 'Restart host' });
  const hostSocket = await connect(nodes[0]!.url, { token: host.accessToken });
  track(hostSocket);
  const { room } = ok(await request(hostSocket, 'room:create', { title, maxMembers: 20 }));
  const guest = await signInGuest(nodes[1]!.url, 'Restart follower');
  const follower = feedFollower(guest.accessToken, room.id, room.pin, track);
  await follower.attach(nodes[1]!.url);
  const acknowledged: string[] = [];
  const refusals: string[] = [];
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      const text = `entry ${++n}`;
      const ack = await request(hostSocket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text }, clientMsgId: randomUUID() }, 5000).catch(() => null);
      if (ack?.ok) acknowledged.push(text);
      else refusals.push(ack ? codeOf(ack) : 'no answer');
      await sleep(20);
    }
  })();
  return {
    hostSocket,
    room,
    follower,
    acknowledged,
    refusals,
    async stop() {
      running = false;
      await loop;
    },
  };
}

async function bothReady(status: number, what: string): Promise<void> {
  await until(async () => (await Promise.all(nodes.map((n) => readiness(n.url)))).every((s) => s === status), what, 30_000);
}

/** A signal from node 1 to node 0 crosses through the adapter's pub/sub. */
async function adapterCrossesNodes(hostSocket: TestSocket, memberSocket: TestSocket, roomId: string): Promise<void> {
  const type = `ping-${randomUUID().slice(0, 8)}`;
  const got = nextEvent(hostSocket, 'room:signal', (p) => p.type === type, 1000);
  memberSocket.emit('room:signal', { roomId, type, payload: {} });
  await got;
}

test('Redis killed and restarted with its data under traffic: nodes stay up, readiness follows Redis, connections stay, and the feed resumes with nothing lost or doubled', async () => {
  const s = await scene('Restart with data');
  await until(() => s.acknowledged.length >= 20, 'traffic before the restart');

  // Snapshot, then crash: Redis comes back exactly as it was at the snapshot.
  await s.stop();
  const admin = new Redis(redis.url);
  await admin.save();
  admin.disconnect();
  const before = [...s.acknowledged];
  await until(() => s.follower.entries.filter((e) => e.type === 'chat.message').length >= before.length, 'delivery before the crash');

  const resumed = (async () => {
    await redis.kill();
    await bothReady(503, 'readiness 503 on both nodes while Redis is gone');
    for (const n of nodes) assert.is((await fetch(`${n.url}/healthz`)).status, 200, 'the node process is up');
    const refused = await request(s.hostSocket, 'feed:publish', { roomId: s.room.id, type: 'chat.message', payload: { text: 'refused' }, clientMsgId: randomUUID() }, 10_000);
    assert.is(codeOf(refused), 'unavailable', 'a write while Redis is gone is refused as unavailable');
    await sleep(1000);
    await redis.start();
  })();
  await resumed;
  await bothReady(200, 'readiness 200 on both nodes after Redis is back');
  assert.ok(s.hostSocket.connected && s.follower.socket.connected, 'Socket.IO connections survived the outage');

  // The adapter resubscribed by itself: a broadcast crosses nodes again.
  await until(
    () =>
      adapterCrossesNodes(s.hostSocket, s.follower.socket, s.room.id).then(
        () => true,
        () => false,
      ),
    'a cross-node broadcast after the restart',
  );

  // New traffic reaches the follower through its node's resumed tail, after the entries before the crash.
  const after: string[] = [];
  for (let i = 1; i <= 20; i++) {
    const text = `after ${i}`;
    ok(await request(s.hostSocket, 'feed:publish', { roomId: s.room.id, type: 'chat.message', payload: { text }, clientMsgId: randomUUID() }));
    after.push(text);
  }
  await until(() => s.follower.entries.filter((e) => e.type === 'chat.message').length >= before.length + after.length, 'live delivery after the restart');
  assertExactlyOnceInOrder(s.follower.entries, [...before, ...after], 'live follower');

  // And a client that reconnects to the other node resumes from its last entry: recovered, nothing lost or doubled.
  await s.follower.attach(nodes[0]!.url);
  assert.equal(s.follower.recovered, [true, true]);
  await sleep(300);
  assertExactlyOnceInOrder(s.follower.entries, [...before, ...after], 'resumed follower');
});

test('Redis restarted empty: the feed answers recovered: false, and rooms, PINs and delivery work again without a node restart', async () => {
  const s = await scene('Restart empty');
  await until(() => s.acknowledged.length >= 10, 'traffic before the restart');
  await redis.kill(); // no snapshot: everything in Redis is lost
  await bothReady(503, 'readiness 503 while Redis is gone');
  // Keep Redis down until the publishing loop has seen a write refused.
  await until(() => s.refusals.length > 0, 'a write refused while Redis is gone');
  await redis.start();
  await bothReady(200, 'readiness 200 after Redis is back');
  await s.stop();
  assert.ok(s.hostSocket.connected, 'connections survived');

  // The feed's epoch is gone: resuming from the old position says so instead of pretending.
  // (Sessions lived in Redis too: a client that reconnects signs in again.)
  const lastSeen = s.follower.entries[s.follower.entries.length - 1]!;
  // Its PIN is claimed again by the next renewal.
  await until(async () => (await fetch(`${nodes[1]!.url}/rooms/pin/${s.room.pin}`)).status === 200, 'the PIN resolving again after the renewal');
  const again = await signInGuest(nodes[1]!.url, 'Signed in again');
  const returning = await connect(nodes[1]!.url, { token: again.accessToken });
  track(returning);
  ok(await request(returning, 'room:join', { pin: s.room.pin }));
  const resumed = ok(await request(returning, 'feed:subscribe', { roomId: s.room.id, since: { epoch: s.follower.epoch, id: lastSeen.id } }));
  assert.is(resumed.recovered, false, 'recovered: false after the data loss');
  assert.is.not(resumed.epoch, s.follower.epoch, 'a new epoch');

  // Publishing reaches subscribers again.
  const fresh = await signInGuest(nodes[1]!.url, 'After the loss');
  const late = await connect(nodes[1]!.url, { token: fresh.accessToken });
  track(late);
  ok(await request(late, 'room:join', { pin: s.room.pin }));
  ok(await request(late, 'feed:subscribe', { roomId: s.room.id }));
  const delivered = nextEvent(late, 'feed:entry', (e) => e.payload.text === 'after the loss', 10_000);
  ok(await request(s.hostSocket, 'feed:publish', { roomId: s.room.id, type: 'chat.message', payload: { text: 'after the loss' }, clientMsgId: randomUUID() }));
  await delivered;
  assert.ok(s.refusals.length > 0 && s.refusals.every((c) => c === 'unavailable'), `writes refused while Redis was gone, as unavailable: ${[...new Set(s.refusals)].join(', ')}`);
});

test.run();
