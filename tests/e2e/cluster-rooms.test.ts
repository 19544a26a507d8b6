/**
 * Three node processes sharing one Redis and one PostgreSQL: broadcasts,
 * presence, kicks and revocations cross nodes through the Redis adapter, and
 * PIN allocation stays unique when every node allocates at the same time.
 */
import { randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ack } from '../../shared/errors.ts';
import type { FeedEntry } from '../../shared/schemas.ts';
import { postJson, signInGuest, signUp } from '../support/auth.ts';
import { connect, disconnected, flushed, nextEvent, request, signalUntilHeard, type TestSocket } from '../support/client.ts';
import { PATIENT_DEADLINES, RAISED_USER_LIMITS, createTestContext, type TestContext } from '../support/context.ts';
import { until } from '../support/faults.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('cluster/rooms');
/** Deadline for an event to cross nodes: generous, since three servers and the client share two cores. How fast is for the benchmark. */
const CROSS_NODE_DEADLINE_MS = 15_000;

let ctx: TestContext;
let nodes: TestServer[] = [];
const sockets: TestSocket[] = [];

function ok<T>(ack: Ack<T>): T {
  if (!ack.ok) throw new Error(`expected ok, got ${ack.error.code}: ${ack.error.message}`);
  return ack.data;
}
async function open(url: string, token: string): Promise<TestSocket> {
  const socket = await connect(url, { token });
  sockets.push(socket);
  return socket;
}

/** A host on node 0 with a room, and one guest member on each node (tabs on other nodes too). */
async function roomAcrossNodes() {
  const host = await signUp(nodes[0]!.url, { displayName: 'Host' });
  const hostSocket = await open(nodes[0]!.url, host.accessToken);
  const { room } = ok(await request(hostSocket, 'room:create', { title: 'Across', maxMembers: 50 }));
  const members = [];
  for (let n = 0; n < nodes.length; n++) {
    const session = await signInGuest(nodes[n]!.url, `Member${n}`);
    const socket = await open(nodes[n]!.url, session.accessToken);
    const joined = ok(await request(socket, 'room:join', { pin: room.pin }));
    members.push({ session, socket, node: n, joined });
  }
  return { host, hostSocket, room, members };
}

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  const env = {
    ...ctx.env,
    AUTH_RATE_GUEST_IP: '10000/60',
    AUTH_RATE_REGISTER_IP: '10000/60',
    ROOM_CREATE_RATE_USER: '100000/60',
    SOCKET_EVENTS_PER_SECOND: '100000',
    ...RAISED_USER_LIMITS,
    PIN_DIGITS: '3',
    PIN_FALLBACK_DIGITS: '0',
    // The allocation race is about uniqueness, not latency.
    ...PATIENT_DEADLINES,
  };
  nodes = await Promise.all([startTestServer(env), startTestServer(env), startTestServer(env)]);
});

test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled(nodes.map((n) => n.stop()));
  await ctx.cleanup();
});

test("a room's broadcasts reach its members on every node: state changes, signals and feed entries", async () => {
  const { hostSocket, room, members } = await roomAcrossNodes();

  const updated = [hostSocket, ...members.map((m) => m.socket)].map((s) => nextEvent(s, 'room:updated', (p) => p.room.id === room.id, CROSS_NODE_DEADLINE_MS));
  ok(await request(hostSocket, 'room:start', { roomId: room.id }));
  for (const update of await Promise.all(updated)) assert.equal([update.room.id, update.room.status], [room.id, 'live'], 'room:updated (live) on all three nodes');

  // A signal from the member on node 1 reaches the host (node 0) and the members on nodes 0 and 2, not its sender.
  const atSender: string[] = [];
  members[1]!.socket.on('room:signal', (p) => atSender.push(p.type));
  const signals = await signalUntilHeard(members[1]!.socket, [hostSocket, members[0]!.socket, members[2]!.socket], { roomId: room.id, type: 'wave', payload: { n: 1 } }, CROSS_NODE_DEADLINE_MS);
  for (const signal of signals) assert.equal(signal, { roomId: room.id, from: members[1]!.session.user.id, type: 'wave', payload: { n: 1 } });
  // A later signal from node 0 reaches the sender after anything its own node sent it for the first ones.
  await signalUntilHeard(members[0]!.socket, [members[1]!.socket], { roomId: room.id, type: 'marker', payload: {} }, CROSS_NODE_DEADLINE_MS);
  assert.ok(atSender.length > 0 && atSender.every((t) => t === 'marker'), `its own signal was not echoed to the sender (${atSender.join(', ')})`);

  // Feed entries published on node 2 reach subscribers on every node, in one order.
  const seen: FeedEntry[][] = members.map(() => []);
  for (const [i, m] of members.entries()) {
    m.socket.on('feed:entry', (e) => e.roomId === room.id && e.type === 'chat.message' && seen[i]!.push(e));
    ok(await request(m.socket, 'feed:subscribe', { roomId: room.id }));
  }
  for (let k = 0; k < 20; k++) {
    ok(await request(members[k % 3]!.socket, 'feed:publish', { roomId: room.id, type: 'chat.message', payload: { text: `m${k}` }, clientMsgId: randomUUID() }));
  }
  await until(() => seen.every((s) => s.length >= 20), 'every member holding the 20 entries', 30_000);
  const orders = seen.map((s) => s.map((e) => e.id).join(','));
  assert.equal(seen[0]!.map((e) => e.payload.text).sort(), Array.from({ length: 20 }, (_, k) => `m${k}`).sort(), 'the 20 entries, each once');
  assert.is(orders[1], orders[0], 'node 1 sees the order node 0 sees');
  assert.is(orders[2], orders[0], 'node 2 sees the order node 0 sees');
});

test('presence is complete on every node: joins, a late joiner\'s member list, and leaves', async () => {
  const host = await signUp(nodes[0]!.url, { displayName: 'P-Host' });
  const hostSocket = await open(nodes[0]!.url, host.accessToken);
  const { room } = ok(await request(hostSocket, 'room:create', { title: 'Presence', maxMembers: 50 }));
  const online = new Set<string>();
  hostSocket.on('room:presence', (p) => p.changes.forEach((c) => (c.online ? online.add(c.userId) : online.delete(c.userId))));

  const members = [];
  for (let i = 0; i < 6; i++) {
    const node = nodes[i % 3]!;
    const session = await signInGuest(node.url, `P${i}`);
    const socket = await open(node.url, session.accessToken);
    ok(await request(socket, 'room:join', { pin: room.pin }));
    members.push({ session, socket });
  }
  await until(() => online.size >= 6, 'the host to see all six come online, from three nodes', 30_000);
  assert.equal(online, new Set(members.map((m) => m.session.user.id)), 'exactly the six members are online');

  // A late joiner on node 2 gets the full member list, every one online.
  const late = await signInGuest(nodes[2]!.url, 'Late');
  const lateSocket = await open(nodes[2]!.url, late.accessToken);
  const joined = ok(await request(lateSocket, 'room:join', { pin: room.pin }));
  const listed = new Map(joined.members!.map((m) => [m.userId, m.online]));
  assert.is(listed.get(host.user.id), true, 'the host is listed online');
  for (const m of members) assert.is(listed.get(m.session.user.id), true, `${m.session.user.name} is listed online`);

  // One leaves on node 1: the late joiner on node 2 sees it go offline.
  const leaver = members[1]!;
  const offline = nextEvent(lateSocket, 'room:presence', (p) => p.changes.some((c) => c.userId === leaver.session.user.id && !c.online), CROSS_NODE_DEADLINE_MS);
  leaver.socket.close();
  await offline;
  const again = ok(await request(lateSocket, 'room:members', { roomId: room.id }));
  assert.is(again.members.find((m) => m.userId === leaver.session.user.id)?.online, false);
});

test('a kick on one node reaches the member\'s tabs on the other nodes and takes them out of the room there', async () => {
  const { hostSocket, room, members } = await roomAcrossNodes();
  const target = members[1]!; // on node 1
  // Two more tabs of the same user, on nodes 0 and 2.
  const tabs = [target.socket, await open(nodes[0]!.url, target.session.accessToken), await open(nodes[2]!.url, target.session.accessToken)];
  for (const tab of tabs.slice(1)) ok(await request(tab, 'room:join', { pin: room.pin }));
  const arrivals = tabs.map((tab) => nextEvent(tab, 'room:kicked', (p) => p.roomId === room.id, CROSS_NODE_DEADLINE_MS));
  ok(await request(hostSocket, 'room:kick', { roomId: room.id, userId: target.session.user.id, banSeconds: 60 }));
  for (const kicked of await Promise.all(arrivals)) assert.is(kicked.roomId, room.id, 'room:kicked on every tab, on every node');
  // They are out of the room's broadcasts on every node. A witness member on
  // each node receives a later broadcast; once all three have it, each node has
  // sent it to its sockets, and a round trip on each tab brings in anything it got.
  const leaked: string[] = [];
  for (const tab of tabs) tab.on('room:signal', (p) => leaked.push(p.type));
  const witness1 = await open(nodes[1]!.url, (await signInGuest(nodes[1]!.url, 'Witness')).accessToken);
  ok(await request(witness1, 'room:join', { pin: room.pin }));
  await signalUntilHeard(members[0]!.socket, [hostSocket, witness1, members[2]!.socket], { roomId: room.id, type: 'after-kick', payload: {} }, CROSS_NODE_DEADLINE_MS);
  await Promise.all(tabs.map((tab) => flushed(tab)));
  assert.equal(leaked, [], 'a kicked tab no longer receives the room');
  const refused = await request(tabs[2]!, 'room:join', { pin: room.pin });
  assert.is(refused.ok ? 'ok' : refused.error.code, 'banned');
});

test("a logout on one node disconnects the session's sockets on every node, and no one else's", async () => {
  const session = await signInGuest(nodes[0]!.url, 'Revoked');
  const tabs = await Promise.all(nodes.map((n) => open(n.url, session.accessToken)));
  const bystander = await open(nodes[1]!.url, (await signInGuest(nodes[1]!.url, 'Other')).accessToken);
  const closed = tabs.map((tab) => nextEvent(tab, 'auth:closed', () => true, CROSS_NODE_DEADLINE_MS));
  const gone = tabs.map((tab) => disconnected(tab, CROSS_NODE_DEADLINE_MS));
  const res = await postJson(`${nodes[2]!.url}/auth/logout`, { refreshToken: session.refreshToken });
  assert.is(res.status, 204);
  assert.equal(await Promise.all(closed), [{ code: 'session_revoked' }, { code: 'session_revoked' }, { code: 'session_revoked' }], 'auth:closed on every node');
  assert.equal(await Promise.all(gone), ['io server disconnect', 'io server disconnect', 'io server disconnect'], 'disconnected by the server on every node');
  // The bystander on node 1 still gets answers after its node closed the revoked tab.
  assert.ok((await request(bystander, 'feed:unsubscribe', { roomId: randomUUID() })).ok, 'another user on the same node is untouched');
  assert.ok(bystander.connected);
});

test('PIN allocation stays unique when all three nodes allocate at once in a 3-digit space', async () => {
  const perSocket = 60;
  const socketsPerNode = 6;
  const hosts = await Promise.all(
    nodes.flatMap((n) =>
      Array.from({ length: socketsPerNode }, async () => {
        const host = await signUp(n.url);
        return open(n.url, host.accessToken);
      }),
    ),
  );
  const results = await Promise.all(
    hosts.flatMap((socket) => Array.from({ length: perSocket }, (_, i) => request(socket, 'room:create', { title: `Race ${i}` }, 60_000))),
  );
  const pins = results.filter((r) => r.ok).map((r) => (r as { ok: true; data: { room: { pin: string; id: string } } }).data.room);
  const refusals = results.filter((r) => !r.ok).map((r) => (r as { ok: false; error: { code: string } }).error.code);
  console.log(`  ${results.length} concurrent creations on 3 nodes: ${pins.length} rooms, refusals ${JSON.stringify(Object.fromEntries([...new Set(refusals)].map((c) => [c, refusals.filter((x) => x === c).length])))}`);
  assert.ok(pins.length > 300, 'most of the space was handed out');
  assert.is(new Set(pins.map((p) => p.pin)).size, pins.length, 'no PIN handed out twice');
  assert.ok(refusals.every((c) => c === 'pin_unavailable'), 'the rest are pin_unavailable');
  // Redis and PostgreSQL agree: each PIN names its room, and no two live rooms share a PIN.
  const redis = ctx.redis();
  const values = await redis.mget(...pins.map((p) => `${ctx.keyPrefix}pin:${p.pin}`));
  pins.forEach((p, i) => assert.is(values[i], p.id, `pin ${p.pin} names its room`));
  const duplicates = await ctx
    .db()
    .selectFrom('rooms')
    .select(['pin'])
    .where('status', '!=', 'ended')
    .groupBy('pin')
    .having((eb) => eb.fn.countAll(), '>', 1)
    .execute();
  assert.equal(duplicates, [], 'no live PIN twice in PostgreSQL');
});

test.run();
