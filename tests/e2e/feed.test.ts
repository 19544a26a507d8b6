import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { FeedEntry, FeedPosition } from '../../shared/schemas.ts';
import { accountInDatabase, logIn, postJson, signInGuest, signUp } from '../support/auth.ts';
import { connect, disconnected, request, type TestSocket } from '../support/client.ts';
import { RAISED_USER_LIMITS, createTestContext, type TestContext } from '../support/context.ts';
import { openRawSocket } from '../support/raw-socket.ts';
import { startRedisServer, type OwnedRedis } from '../support/redis-server.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const test = suite('feed/e2e');
const API_KEY = randomBytes(24).toString('hex');
/** The administrator, created in the database before the servers start (named by id in FEED_ADMIN_USERS). */
let adminAccount: { id: string; username: string; password: string };

let ctx: TestContext;
let a: TestServer;
let b: TestServer;
const sockets: TestSocket[] = [];
const servers: TestServer[] = [];
const owned: OwnedRedis[] = [];

function env(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...ctx.env,
    SOCKET_EVENTS_PER_SECOND: '1000000',
    ...RAISED_USER_LIMITS,
    FEED_API_KEY: API_KEY,
    FEED_ADMIN_USERS: adminAccount.id,
    FEED_ARCHIVE_CLAIM_IDLE_MS: '1000',
    ...extra,
  };
}

async function open(url: string, token: string): Promise<TestSocket> {
  const socket = await connect(url, { token });
  sockets.push(socket);
  return socket;
}

function ok<T>(ack: { ok: true; data: T } | { ok: false; error: { code: string; message: string } }): T {
  if (!ack.ok) throw new Error(`expected ok, got ${ack.error.code}: ${ack.error.message}`);
  return ack.data;
}

/** A host (registered) with a room on `url`, and the room's PIN. */
async function hostRoom(url: string) {
  const host = await signUp(url);
  const socket = await open(url, host.accessToken);
  const { room } = ok(await request(socket, 'room:create', { title: 'Feed room', maxMembers: 50 }));
  return { host, socket, roomId: room.id, pin: room.pin };
}

/** A guest who joined the room by PIN; returns the join's feed position. */
async function member(url: string, pin: string, name?: string) {
  const session = await signInGuest(url, name);
  const socket = await open(url, session.accessToken);
  const joined = ok(await request(socket, 'room:join', { pin }));
  return { session, socket, position: joined.feed! };
}

function collect(socket: TestSocket, roomId: string | null = null, scope?: 'global' | 'system'): FeedEntry[] {
  const entries: FeedEntry[] = [];
  socket.on('feed:entry', (e) => {
    if (scope ? e.scope === scope : e.roomId === roomId && !e.scope) entries.push(e);
  });
  return entries;
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

let msg = 0;
const publish = async (socket: TestSocket, roomId: string, text: string, clientMsgId = `m-${++msg}-${randomBytes(3).toString('hex')}`) =>
  ok(await request(socket, 'feed:publish', { roomId, type: 'chat.message', payload: { text }, clientMsgId })).id;

/** A member that follows a room's feed across reconnects, resuming from the last entry it saw. */
function follower(token: string, roomId: string, pin: string) {
  const entries: FeedEntry[] = [];
  let epoch = '';
  let socket: TestSocket | undefined;
  return {
    entries,
    get socket() {
      return socket!;
    },
    async attach(url: string, start?: FeedPosition) {
      socket = await open(url, token);
      socket.on('feed:entry', (e) => {
        if (e.roomId === roomId) entries.push(e);
      });
      const joined = ok(await request(socket, 'room:join', { pin }));
      const from = entries.length > 0 ? { epoch, id: entries[entries.length - 1]!.id } : { epoch: (start ?? joined.feed!).epoch, id: (start ?? joined.feed!).lastId };
      const subscribed = ok(await request(socket, 'feed:subscribe', { roomId, since: from }, 15_000));
      assert.ok(subscribed.recovered, 'resumed without loss');
      epoch = subscribed.epoch;
    },
  };
}

test.before(async () => {
  ctx = createTestContext();
  // Create the database first: two processes creating it at once race in CREATE DATABASE.
  await ctx.migrate();
  adminAccount = await accountInDatabase(ctx.db());
  [a, b] = await Promise.all([startTestServer(env()), startTestServer(env())]);
  servers.push(a, b);
});

test.after(async () => {
  for (const s of sockets) s.close();
  await Promise.allSettled(servers.map((s) => s.stop()));
  await Promise.allSettled(servers.map((s) => s.kill()));
  for (const r of owned) await r.dispose();
  await ctx.cleanup();
});

test('room:join answers the feed position; members publish and subscribe, others are refused', async () => {
  const { socket: hostSocket, roomId, pin } = await hostRoom(a.url);
  const hostEntries = collect(hostSocket, roomId);
  const hostPosition = ok(await request(hostSocket, 'feed:subscribe', { roomId }));
  assert.is(hostPosition.recovered, false, 'no since: nothing to recover');

  const guest = await member(b.url, pin, 'Grace');
  assert.ok(guest.position.epoch.length > 0);
  await until(() => hostEntries.some((e) => e.type === 'member.joined'), 'member.joined');
  const joinedEntry = hostEntries.find((e) => e.type === 'member.joined')!;
  assert.is(guest.position.lastId, joinedEntry.id, 'the join position includes the join itself');
  assert.equal(joinedEntry.actor, { id: guest.session.user.id, name: 'Grace' });

  const guestEntries = collect(guest.socket, roomId);
  const sub = ok(await request(guest.socket, 'feed:subscribe', { roomId, since: { epoch: guest.position.epoch, id: guest.position.lastId } }));
  assert.ok(sub.recovered);
  const id = await publish(hostSocket, roomId, 'hello');
  // The entry may reach the guest before the host has its ack: look at what was collected.
  await until(() => guestEntries.some((e) => e.id === id), 'the entry at the guest');
  const got = guestEntries.find((e) => e.id === id)!;
  assert.equal(got.payload, { text: 'hello' });
  assert.is(got.type, 'chat.message');
  assert.ok(Math.abs(got.ts - Date.now()) < 60_000);
  assert.equal(guestEntries.map((e) => e.id), [id]);

  // Not a member on this connection: refused.
  const outsider = await signInGuest(a.url);
  const stranger = await open(a.url, outsider.accessToken);
  for (const ack of [
    await request(stranger, 'feed:subscribe', { roomId }),
    await request(stranger, 'feed:publish', { roomId, type: 'chat.message', payload: { text: 'x' }, clientMsgId: 'x1' }),
    await request(stranger, 'feed:history', { roomId }),
  ]) {
    assert.is(ack.ok, false);
    if (!ack.ok) assert.is(ack.error.code, 'forbidden');
  }
  // host.* is for the host only; payloads are validated per type and bounded.
  const hostOnly = await request(guest.socket, 'feed:publish', { roomId, type: 'host.question', payload: { q: 1 }, clientMsgId: 'h1' });
  assert.is(!hostOnly.ok && hostOnly.error.code, 'forbidden');
  assert.ok(ok(await request(hostSocket, 'feed:publish', { roomId, type: 'host.question', payload: { q: 1 }, clientMsgId: 'h1' })).id);
  const badChat = await request(guest.socket, 'feed:publish', { roomId, type: 'chat.message', payload: { emoji: 'x' }, clientMsgId: 'b1' });
  assert.is(!badChat.ok && badChat.error.code, 'bad_request');
  const big = await request(hostSocket, 'feed:publish', { roomId, type: 'host.blob', payload: { blob: 'x'.repeat(9000) }, clientMsgId: 'b2' });
  assert.is(!big.ok && big.error.code, 'bad_request');
  const serverType = await request(hostSocket, 'feed:publish', { roomId, type: 'member.joined' as 'reaction', payload: {}, clientMsgId: 'b3' });
  assert.is(!serverType.ok && serverType.error.code, 'bad_request');
});

test('a clientMsgId retried from the same user returns the first id and adds nothing', async () => {
  const { socket, roomId } = await hostRoom(a.url);
  const first = await publish(socket, roomId, 'once', 'retry-1');
  const again = await Promise.all([publish(socket, roomId, 'once', 'retry-1'), publish(socket, roomId, 'twice?', 'retry-1')]);
  assert.equal(again, [first, first]);
  const page = ok(await request(socket, 'feed:history', { roomId, limit: 100 }));
  assert.is(page.entries.filter((e) => e.type === 'chat.message').length, 1);
});

test('two nodes publishing concurrently into one room: every subscriber sees one identical order', async () => {
  const { socket: hostSocket, roomId, pin } = await hostRoom(a.url);
  const guest = await member(b.url, pin);
  const watchers = [await member(a.url, pin), await member(b.url, pin), await member(a.url, pin), await member(b.url, pin)];
  const seen = [] as FeedEntry[][];
  for (const w of watchers) {
    seen.push(collect(w.socket, roomId));
    ok(await request(w.socket, 'feed:subscribe', { roomId }));
  }
  const writes = async (socket: TestSocket, tag: string) => {
    const ids: string[] = [];
    for (let i = 0; i < 150; i++) ids.push(await publish(socket, roomId, `${tag}${i}`));
    return ids;
  };
  const [fromA, fromB] = await Promise.all([writes(hostSocket, 'a'), writes(guest.socket, 'b')]);
  const published = new Set([...fromA, ...fromB]);
  await until(() => seen.every((s) => s.filter((e) => published.has(e.id)).length === 300), 'every watcher to see 300 entries');
  const reference = seen[0]!.filter((e) => published.has(e.id)).map((e) => e.id);
  assert.is(new Set(reference).size, 300);
  for (const s of seen) assert.equal(s.filter((e) => published.has(e.id)).map((e) => e.id), reference);
  // Both publishers interleaved, and each one's own entries kept their order.
  assert.equal(reference.filter((id) => fromA.includes(id)), fromA);
  assert.equal(reference.filter((id) => fromB.includes(id)), fromB);
});

test('a client disconnected during 200 entries resumes with all of them, once each, in order', async () => {
  const { socket: hostSocket, roomId, pin } = await hostRoom(b.url);
  const session = await signInGuest(a.url);
  const f = follower(session.accessToken, roomId, pin);
  await f.attach(a.url);
  const ids: string[] = [];
  const writing = (async () => {
    for (let i = 0; i < 200; i++) ids.push(await publish(hostSocket, roomId, `n${i}`));
  })();
  await until(() => f.entries.filter((e) => e.type === 'chat.message').length >= 40, 'some entries before the drop');
  f.socket.disconnect();
  await until(() => ids.length >= 120, 'more entries while away');
  await f.attach(a.url);
  await writing;
  // A later entry marks the end: the feed is in order, so anything doubled would have come before it.
  const marker = await publish(hostSocket, roomId, 'marker');
  await until(() => f.entries.some((e) => e.id === marker), 'the marker after all 200');
  const chats = f.entries.filter((e) => e.type === 'chat.message' && e.id !== marker);
  assert.equal(chats.map((e) => e.id), ids);
  assert.equal(chats.map((e) => e.payload.text), ids.map((_, i) => `n${i}`));
});

test('a node killed with SIGKILL while another publishes 1,000 numbered entries: its clients reconnect to a survivor and end with all 1,000 exactly once, in order', async () => {
  const doomed = await startTestServer(env());
  servers.push(doomed);
  const { socket: hostSocket, roomId, pin } = await hostRoom(a.url);
  const followers = await Promise.all(
    [0, 1, 2].map(async () => {
      const s = await signInGuest(doomed.url);
      const f = follower(s.accessToken, roomId, pin);
      await f.attach(doomed.url);
      return f;
    }),
  );
  const numbered = (f: ReturnType<typeof follower>) => f.entries.filter((e) => e.type === 'host.number');
  const ids: string[] = [];
  const writing = (async () => {
    for (let n = 0; n < 1000; n++) {
      ids.push(ok(await request(hostSocket, 'feed:publish', { roomId, type: 'host.number', payload: { n }, clientMsgId: `num-${n}` })).id);
    }
  })();
  await until(() => followers.every((f) => numbered(f).length >= 250), 'followers to be a quarter through');
  const drops = followers.map((f) => disconnected(f.socket, 30_000));
  await doomed.kill();
  await Promise.all(drops);
  // Reconnect to the survivors while the publisher goes on.
  await Promise.all(followers.map((f, i) => f.attach(i % 2 === 0 ? a.url : b.url)));
  await writing;
  await until(() => followers.every((f) => numbered(f).length >= 1000), 'all 1,000 at every follower', 60_000);
  // A later entry marks the end: the feed is in order, so anything doubled would have come before it.
  const marker = ok(await request(hostSocket, 'feed:publish', { roomId, type: 'host.marker', payload: {}, clientMsgId: 'marker' })).id;
  await until(() => followers.every((f) => f.entries.some((e) => e.id === marker)), 'the marker at every follower');
  for (const f of followers) {
    const got = numbered(f);
    assert.is(got.length, 1000);
    assert.equal(got.map((e) => e.payload.n), [...Array(1000).keys()]);
    assert.equal(got.map((e) => e.id), ids);
  }
  // The archive ends with every entry of the room exactly once, whatever the killed node was doing.
  await until(async () => {
    const rows = await ctx.db().selectFrom('activity').select('entry_id').where('room_id', '=', roomId).where('type', '=', 'host.number').execute();
    return new Set(rows.map((r) => r.entry_id)).size >= 1000;
  }, 'the archive to hold every number', 60_000);
  const rows = await ctx.db().selectFrom('activity').select(['entry_id', 'type']).where('room_id', '=', roomId).execute();
  assert.is(new Set(rows.map((r) => r.entry_id)).size, rows.length, 'no duplicate rows');
  assert.equal(new Set(rows.filter((r) => r.type === 'host.number').map((r) => r.entry_id)), new Set(ids));
});

test('history pages newest first', async () => {
  const { socket, roomId } = await hostRoom(b.url);
  const ids: string[] = [];
  for (let i = 0; i < 25; i++) ids.push(await publish(socket, roomId, `h${i}`));
  const first = ok(await request(socket, 'feed:history', { roomId, limit: 10 }));
  assert.equal(first.entries.map((e) => e.id), ids.slice(15).reverse());
  const second = ok(await request(socket, 'feed:history', { roomId, before: first.nextBefore!, limit: 10 }));
  assert.equal(second.entries.map((e) => e.id), ids.slice(5, 15).reverse());
  const bad = await request(socket, 'feed:history', { roomId, limit: 101 });
  assert.is(!bad.ok && bad.error.code, 'bad_request');
});

test('a backend publishes over HTTP with the service API key; a wrong or missing key is refused', async () => {
  const { socket, roomId } = await hostRoom(a.url);
  const entries = collect(socket, roomId);
  ok(await request(socket, 'feed:subscribe', { roomId }));
  const url = `${b.url}/api/rooms/${roomId}/events`;
  const body = { type: 'host.announcement', payload: { text: 'from the backend' }, clientMsgId: 'svc-1' };
  assert.is((await postJson(url, body)).status, 401);
  assert.is((await postJson(url, body, { 'x-api-key': `${API_KEY}x` })).status, 401);
  const created = await postJson<{ id: string }>(url, body, { 'x-api-key': API_KEY });
  assert.is(created.status, 201);
  const again = await postJson<{ id: string }>(url, body, { 'x-api-key': API_KEY });
  assert.is(again.status, 200);
  assert.is(again.body.id, created.body.id);
  await until(() => entries.some((e) => e.id === created.body.id), 'the backend entry');
  const entry = entries.find((e) => e.id === created.body.id)!;
  assert.is(entry.actor, null);
  assert.equal(entry.payload, { text: 'from the backend' });
  assert.is((await postJson(`${b.url}/api/rooms/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/events`, body, { 'x-api-key': API_KEY })).status, 404);
  assert.is((await postJson(url, { type: 'chat.message', payload: {} }, { 'x-api-key': API_KEY })).status, 400);
});

test('admins follow the global and system feeds; other users are refused', async () => {
  const admin = await logIn(a.url, adminAccount.username, adminAccount.password);
  const adminSocket = await open(a.url, admin.accessToken);
  const globalEntries = collect(adminSocket, null, 'global');
  const systemEntries = collect(adminSocket, null, 'system');
  ok(await request(adminSocket, 'feed:subscribe', { scope: 'global' }));
  ok(await request(adminSocket, 'feed:subscribe', { scope: 'system' }));
  const { socket, roomId } = await hostRoom(b.url);
  const id = await publish(socket, roomId, 'seen globally');
  await until(() => globalEntries.some((e) => e.roomId === roomId && e.payload.text === 'seen globally'), 'the global entry');
  assert.ok(id.length > 0);
  const guest = await signInGuest(b.url);
  await until(() => systemEntries.some((e) => e.type === 'auth.signed_in' && e.payload.userId === guest.user.id), 'a sign-in in the system log');
  const nobody = await open(a.url, guest.accessToken);
  const refused = await request(nobody, 'feed:subscribe', { scope: 'system' });
  assert.is(!refused.ok && refused.error.code, 'forbidden');
});

test('when Redis loses its data the epoch changes: live subscribers are disconnected, and resuming answers recovered: false', async () => {
  const redis = await startRedisServer();
  owned.push(redis);
  const lone = await startTestServer(env({ REDIS_URL: redis.url, REDIS_CLUSTER_NODES: '', FEED_API_KEY: '' }));
  servers.push(lone);
  const { socket: hostSocket, roomId, pin } = await hostRoom(lone.url);
  const watcher = await member(lone.url, pin);
  const watched = collect(watcher.socket, roomId);
  ok(await request(watcher.socket, 'feed:subscribe', { roomId, since: { epoch: watcher.position.epoch, id: watcher.position.lastId } }));
  const last = await publish(hostSocket, roomId, 'before the flush');
  await until(() => watched.some((e) => e.id === last), 'the entry before the flush');

  const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  await admin.flushall();
  admin.disconnect();
  const gone = disconnected(watcher.socket, 20_000);
  await publish(hostSocket, roomId, 'after the flush');
  assert.is(await gone, 'transport close', 'the subscriber is sent to reconnect');

  const resumed = ok(await request(hostSocket, 'feed:subscribe', { roomId, since: { epoch: watcher.position.epoch, id: last } }));
  assert.is(resumed.recovered, false);
  assert.is.not(resumed.epoch, watcher.position.epoch);
  // Without a configured API key the route does not exist.
  assert.is((await postJson(`${lone.url}/api/rooms/${roomId}/events`, { type: 'reaction', payload: { emoji: 'x' } }, { 'x-api-key': API_KEY })).status, 404);
});

test('a subscriber that stops reading is cut off at SOCKET_MAX_BUFFERED_BYTES, and resumes with since without losing an entry', async () => {
  const limited = await startTestServer(env({ SOCKET_MAX_BUFFERED_BYTES: '65536' }));
  servers.push(limited);
  const { socket: hostSocket, roomId, pin } = await hostRoom(limited.url);
  const guest = await signInGuest(limited.url);
  const raw = await openRawSocket(limited.url, { token: guest.accessToken });
  raw.send(`421["room:join",{"pin":"${pin}"}]`);
  const joined = JSON.parse(((await raw.next((f) => typeof f === 'string' && f.startsWith('431'))) as string).slice(3))[0] as { ok: true; data: { feed: FeedPosition } };
  raw.send(`422["feed:subscribe",{"roomId":"${roomId}"}]`);
  await raw.next((f) => typeof f === 'string' && f.startsWith('432'));
  // The client stops reading its socket: what the server writes piles up in the kernel, then in the server.
  const tcp = (raw.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  tcp.pause();
  const blob = 'x'.repeat(7000);
  const ids: string[] = [];
  let n = 0;
  while (!/socket not reading its feed/.test(limited.output()) && n < 4000) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => {
      const i = n++;
      return request(hostSocket, 'feed:publish', { roomId, type: 'host.blob', payload: { n: i, blob }, clientMsgId: `blob-${i}` }).then((ack) => ({ i, id: ok(ack).id }));
    }));
    for (const { id } of batch) ids.push(id);
    if (n % 200 === 0) await new Promise((r) => setTimeout(r, 20));
  }
  tcp.resume();
  // Publishes ran 20 at a time: the stream's order is the ids' order.
  const byId = (x: string, y: string) => {
    const [xm, xs] = x.split('-').map(Number) as [number, number];
    const [ym, ys] = y.split('-').map(Number) as [number, number];
    return xm - ym || xs - ys;
  };
  ids.sort(byId);
  const closed = await Promise.race([raw.closed, new Promise<null>((r) => setTimeout(() => r(null), 20_000))]);
  assert.ok(closed, `the server closed the connection of the subscriber that did not read (after ${n} entries)`);
  assert.match(limited.output(), /socket not reading its feed/);
  const received = raw.frames
    .filter((f): f is string => typeof f === 'string' && f.startsWith('42["feed:entry"'))
    .map((f) => (JSON.parse(f.slice(2)) as [string, FeedEntry])[1])
    .filter((e) => e.type === 'host.blob');
  assert.ok(received.length < ids.length, `it was cut off before the end (${received.length} of ${ids.length})`);
  assert.equal(received.map((e) => e.id), ids.slice(0, received.length), 'what it got is a prefix, in order');
  // Reconnect and resume from the last entry it holds: the rest arrives, once, in order.
  const back = await open(limited.url, guest.accessToken);
  const resumed = collect(back, roomId);
  ok(await request(back, 'room:join', { pin }));
  const from = received.length > 0 ? received[received.length - 1]!.id : joined.data.feed.lastId;
  const sub = ok(await request(back, 'feed:subscribe', { roomId, since: { epoch: joined.data.feed.epoch, id: from } }, 30_000));
  assert.ok(sub.recovered);
  const rest = resumed.filter((e) => e.type === 'host.blob');
  assert.equal([...received, ...rest].map((e) => e.id), ids);
});

test('repeated feed:subscribe on one connection does not multiply the replay: each entry reaches it about once, and one live subscription remains', async () => {
  const { socket: hostSocket, roomId, pin } = await hostRoom(a.url);
  const watcher = await member(a.url, pin);
  const ids: string[] = [];
  for (let i = 0; i < 600; i += 50) ids.push(...(await Promise.all(Array.from({ length: 50 }, (_, k) => publish(hostSocket, roomId, `r${i + k}`)))));
  const got = collect(watcher.socket, roomId);
  const since = { epoch: watcher.position.epoch, id: watcher.position.lastId };
  const acks = await Promise.all(Array.from({ length: 20 }, () => request(watcher.socket, 'feed:subscribe', { roomId, since }, 30_000)));
  assert.ok(acks.every((ack) => ack.ok), 'every subscribe is answered');
  const chats = () => got.filter((e) => e.type === 'chat.message');
  assert.ok(chats().length >= 600, 'the last subscribe replayed everything');
  assert.ok(chats().length <= 1200, `20 subscribes delivered ${chats().length} entries for a replay of 600`);
  const id = await publish(hostSocket, roomId, 'after');
  await until(() => got.some((e) => e.id === id), 'the live entry');
  await new Promise((r) => setTimeout(r, 200));
  assert.is(got.filter((e) => e.id === id).length, 1, 'one live subscription');
});

test('a kicked member cannot publish any more, on any node, though its earlier publishes were allowed', async () => {
  const { socket: hostSocket, roomId, pin } = await hostRoom(a.url);
  const kicked = await member(b.url, pin);
  await publish(kicked.socket, roomId, 'allowed');
  ok(await request(hostSocket, 'room:kick', { roomId, userId: kicked.session.user.id }));
  await until(async () => {
    const ack = await request(kicked.socket, 'feed:publish', { roomId, type: 'chat.message', payload: { text: 'after kick' }, clientMsgId: `k-${randomBytes(3).toString('hex')}` });
    return !ack.ok && ack.error.code === 'forbidden';
  }, 'the publish to be refused');
  ok(await request(hostSocket, 'room:end', { roomId }));
  const host = await request(hostSocket, 'feed:publish', { roomId, type: 'chat.message', payload: { text: 'after end' }, clientMsgId: 'end-1' });
  assert.is(!host.ok && host.error.code, 'forbidden', 'nobody publishes into an ended room');
});

test('a resume whose gap is longer than FEED_REPLAY_MAX replays nothing and answers recovered: false; a gap of exactly FEED_REPLAY_MAX is replayed', async () => {
  const REPLAY_MAX = 5;
  const small = await startTestServer(env({ FEED_REPLAY_MAX: String(REPLAY_MAX) }));
  servers.push(small);
  const { socket: hostSocket, roomId, pin } = await hostRoom(small.url);
  const away = await member(small.url, pin);
  const seen = collect(away.socket, roomId);
  const subscribed = ok(await request(away.socket, 'feed:subscribe', { roomId }));
  const first = await publish(hostSocket, roomId, 'seen before leaving');
  await until(() => seen.some((e) => e.id === first), 'the first entry');

  /** Resume a fresh connection of the same member from `since`; what arrived before the answer, and the answer. */
  const resume = async (since: string) => {
    const socket = await open(small.url, away.session.accessToken);
    ok(await request(socket, 'room:join', { pin }));
    const before = collect(socket, roomId);
    const answer = ok(await request(socket, 'feed:subscribe', { roomId, since: { epoch: subscribed.epoch, id: since } }));
    return { socket, replayed: [...before], answer, live: before };
  };

  const exactly: string[] = [];
  for (let i = 1; i <= REPLAY_MAX; i++) exactly.push(await publish(hostSocket, roomId, `gap of ${REPLAY_MAX}: ${i}`));
  const fits = await resume(first);
  assert.is(fits.answer.recovered, true, `a gap of ${REPLAY_MAX} is replayed`);
  assert.equal(fits.replayed.map((e) => e.id), exactly, 'replayed before the answer, in order');
  fits.socket.close();

  const longer: string[] = [];
  for (let i = 1; i <= REPLAY_MAX + 1; i++) longer.push(await publish(hostSocket, roomId, `gap of ${REPLAY_MAX * 2 + 1}: ${i}`));
  const tooLong = await resume(first);
  assert.is(tooLong.answer.recovered, false, `a gap of ${exactly.length + longer.length} is not replayed`);
  assert.equal(tooLong.replayed, [], 'nothing replayed');
  assert.is(tooLong.answer.lastId, longer[longer.length - 1], 'delivery starts after the newest entry');
  const next = await publish(hostSocket, roomId, 'live after the reload');
  await until(() => tooLong.live.some((e) => e.id === next), 'live entries after lastId');
  assert.equal(tooLong.live.map((e) => e.id), [next], 'only live entries after lastId');
});

test.run();
