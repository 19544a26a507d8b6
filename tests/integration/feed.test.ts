import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import type { RedisClient } from '../../server/redis/connections.ts';
import { sql } from 'kysely';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { FeedEntry } from '../../shared/schemas.ts';
import { loadConfig, type Config } from '../../server/config.ts';
import { createActivityRepository, dayOf, partitionName } from '../../server/feed/activity-repository.ts';
import { createArchiveHints, createArchiver, type Archiver } from '../../server/feed/archiver.ts';
import { createFeedRelay, type FeedRelay, type LostReason } from '../../server/feed/feed-relay.ts';
import { ROLES_REMEMBERED, createFeedService, type FeedAccess } from '../../server/feed/feed-service.ts';
import { createFeedStore, entryTail, type Delivery, type FeedStore } from '../../server/feed/feed-store.ts';
import { compareIds } from '../../shared/stream-ids.ts';
import { createLogger } from '../../server/logger.ts';
import { closeRedis, connectRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { EVENT_DEADLINE_MS } from '../support/client.ts';
import { createTestContext, deleteByPrefix, type TestContext } from '../support/context.ts';
import { startRedisServer, type OwnedRedis } from '../support/redis-server.ts';

async function archiverParts(config: Config, db: ReturnType<TestContext['db']>) {
  const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
  const redis = createRedisClient(config, logger, 'command');
  await connectRedis(redis, config);
  const keys = createKeys(config.redis.keyPrefix);
  const scripts = createScripts(redis);
  const store = createFeedStore({ redis, scripts, keys, config });
  return { logger, redis, keys, scripts, store, activity: createActivityRepository(db) };
}

// A child process of this file acts as an archive worker that is SIGKILLed between its insert and moving the room's cursor.
if (process.env.FEED_ARCHIVE_CHILD_ENV) {
  const config = loadConfig(JSON.parse(process.env.FEED_ARCHIVE_CHILD_ENV) as Record<string, string>);
  const { createDb } = await import('../../server/db/database.ts');
  const { db } = createDb(config, createLogger({ log: { level: 'silent' }, env: 'test' }));
  const parts = await archiverParts(config, db);
  const worker = createArchiver({
    ...parts,
    db,
    config,
    consumer: 'doomed',
    hooks: {
      afterInsert: async (records) => {
        process.stdout.write(`INSERTED ${records.length}\n`);
        await new Promise(() => undefined); // never moves the cursor: killed here
      },
    },
  });
  await worker.start();
  await new Promise(() => undefined);
}

const test = suite('feed/streams');
const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
let ctx: TestContext;
const cleanups: (() => Promise<void> | void)[] = [];

interface Node {
  config: Config;
  redis: RedisClient;
  store: FeedStore;
  relay: FeedRelay;
  subscriber: RedisClient;
}

async function startNode(config: Config, options: { readCount?: number; checkIntervalMs?: number; hints?: boolean } = {}): Promise<Node> {
  const redis = createRedisClient(config, logger, 'command');
  const subscriber = createRedisClient(config, logger, 'subscriber');
  await Promise.all([connectRedis(redis, config), connectRedis(subscriber, config)]);
  const keys = createKeys(config.redis.keyPrefix);
  const hints = createArchiveHints({ redis, keys, logger });
  const store = createFeedStore({ redis, scripts: createScripts(redis), keys, config, ...(options.hints === false ? {} : { onAppended: hints.add }) });
  const relay = createFeedRelay({
    store,
    subscriber,
    archive: createActivityRepository(ctx.db()),
    replayMax: config.feed.replayMax,
    logger,
    ...(options.readCount ? { readCount: options.readCount } : {}),
    checkIntervalMs: options.checkIntervalMs ?? config.feed.checkIntervalMs,
  });
  relay.start();
  hints.start();
  cleanups.push(async () => {
    await relay.stop();
    await hints.stop();
    await Promise.all([closeRedis(subscriber), closeRedis(redis)]);
  });
  return { config, redis, store, relay, subscriber };
}

async function startArchiver(config: Config, consumer?: string): Promise<Archiver & { redis: RedisClient }> {
  const parts = await archiverParts(config, ctx.db());
  const archiver = createArchiver({ ...parts, db: ctx.db(), config, ...(consumer ? { consumer } : {}) });
  await archiver.start();
  cleanups.push(async () => {
    await archiver.stop();
    await closeRedis(parts.redis);
  });
  return Object.assign(archiver, { redis: parts.redis });
}

const entryOf = (d: Delivery) => JSON.parse(d.json) as FeedEntry;

function collector() {
  const entries: FeedEntry[] = [];
  const lost: LostReason[] = [];
  return {
    entries,
    lost,
    sink: { deliver: (d: Delivery) => void entries.push(entryOf(d)), lost: (r: LostReason) => void lost.push(r) },
    async waitFor(count: number, timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs;
      while (entries.length < count) {
        if (Date.now() > end) throw new Error(`received ${entries.length} of ${count} entries`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A room row in PostgreSQL (the archive keeps entries of known rooms only). */
async function createRoom(): Promise<string> {
  const db = ctx.db();
  const host = await db.insertInto('users').values({ display_name: 'Host', kind: 'guest' }).returning('id').executeTakeFirstOrThrow();
  const id = randomUUID();
  await db.insertInto('rooms').values({ id, pin: String(100000 + Math.floor(Math.random() * 899999)), title: 't', host_id: host.id, max_members: 10 }).execute();
  return id;
}

const actor = { id: randomUUID(), name: 'Ada' };
const numbered = (store: FeedStore, roomId: string, n: number, from = 0) =>
  (async () => {
    const ids: string[] = [];
    for (let i = from; i < from + n; i++) ids.push((await store.append({ roomId, type: 'chat.message', actor, payload: { text: `#${i}` } })).id);
    return ids;
  })();

/** Append `n` entries in chunks, letting the archive catch up after each (it reads the room stream, which keeps only about FEED_ROOM_MAXLEN). */
async function archivedAlong(store: FeedStore, roomId: string, n: number): Promise<string[]> {
  const activity = createActivityRepository(ctx.db());
  const ids: string[] = [];
  for (let from = 0; from < n; from += 20) {
    ids.push(...(await numbered(store, roomId, Math.min(20, n - from), from)));
    await until(async () => (await activity.count(roomId)) === ids.length, `the archive to hold ${ids.length} entries`);
  }
  return ids;
}

const streamIds = async (redis: RedisClient, key: string) => ((await redis.xrange(key, '-', '+')) as [string, string[]][]).map(([id]) => id);

/**
 * Append through the real script but publish on a channel nobody follows (in
 * the room's slot): the entry is in the stream, its live message is lost.
 */
async function appendUnheard(node: Node, roomId: string, text: string): Promise<string> {
  const keys = createKeys(node.config.redis.keyPrefix);
  const payload = JSON.stringify({ text });
  const [id] = await createScripts(node.redis).run<[string]>('feed-append', [keys.feedStream(roomId), keys.feedMeta(roomId), `${keys.room(roomId)}:feed:nowhere`], [
    node.config.feed.roomMaxLen, node.config.feed.roomTtlSeconds * 1000, 1000, 'unused-epoch', 'chat.message', actor.id, actor.name, payload,
    entryTail(roomId, undefined, 'chat.message', actor.id, actor.name, payload), '', '', '',
  ]);
  return id;
}

test.before(async () => {
  ctx = createTestContext({ FEED_ROOM_MAXLEN: '10', FEED_ARCHIVE_DELAY_MS: '20' });
  await ctx.migrate();
});
test.after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await ctx.cleanup();
});

test('an entry is in the room stream, linked to the one before and counted, and its id is the stream id', async () => {
  const node = await startNode(ctx.config);
  const roomId = randomUUID();
  const a = await node.store.append({ roomId, type: 'chat.message', actor, payload: { text: 'one' } });
  const b = await node.store.append({ roomId, type: 'reaction', actor, payload: { emoji: '👍' } });
  const raw = (await node.redis.xrange(createKeys(ctx.keyPrefix).feedStream(roomId), '-', '+')) as [string, string[]][];
  assert.equal(raw.map(([id]) => id), [a.id, b.id]);
  const page = await node.store.after({ kind: 'room', roomId }, '0-0', 10);
  assert.equal(page.map((s) => s.prev), ['0-0', a.id]);
  assert.equal(page.map((s) => s.n), [1, 2]);
  assert.equal(entryOf(page[1]!), { roomId, id: b.id, type: 'reaction', actor, payload: { emoji: '👍' }, ts: Number(b.id.split('-')[0]) });
  assert.is(a.epoch, b.epoch);
  assert.ok((await node.redis.pttl(createKeys(ctx.keyPrefix).feedStream(roomId))) > 0, 'the room stream expires when idle');
});

test('a repeated clientMsgId from the same user returns the first id and adds nothing', async () => {
  const node = await startNode(ctx.config);
  const keys = createKeys(ctx.keyPrefix);
  const roomId = randomUUID();
  const input = { roomId, type: 'chat.message', actor, payload: { text: 'once' }, idempotency: { key: actor.id, clientMsgId: 'm-1' } };
  const first = await node.store.append(input);
  const retries = await Promise.all([1, 2, 3].map(() => node.store.append({ ...input, payload: { text: 'changed' } })));
  for (const r of retries) {
    assert.is(r.id, first.id);
    assert.ok(r.duplicate);
  }
  assert.is(await node.redis.xlen(keys.feedStream(roomId)), 1);
  const ttl = await node.redis.ttl(keys.feedMsgId(roomId, actor.id, 'm-1'));
  assert.ok(ttl > 86_000 && ttl <= 86_400, `idempotency TTL ${ttl}`);
  const other = await node.store.append({ ...input, idempotency: { key: randomUUID(), clientMsgId: 'm-1' } });
  assert.is.not(other.id, first.id, 'another user may use the same clientMsgId');
});

test('after room.ended the feed refuses members\' publishes, atomically with the append', async () => {
  const node = await startNode(ctx.config);
  const roomId = randomUUID();
  await node.store.append({ roomId, type: 'chat.message', actor, payload: { text: 'open' }, refuseClosed: true });
  await node.store.append({ roomId, type: 'room.ended', actor, payload: { reason: 'host_ended' } });
  try {
    await node.store.append({ roomId, type: 'chat.message', actor, payload: { text: 'late' }, refuseClosed: true });
    assert.unreachable('a publish into an ended room was stored');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'forbidden');
  }
  assert.is(await node.redis.xlen(createKeys(ctx.keyPrefix).feedStream(roomId)), 2);
});

test('entries published on one node reach subscribers on another once, in order, with no XREAD and only the channels of local rooms', async () => {
  const owned: OwnedRedis = await startRedisServer();
  cleanups.push(() => owned.dispose());
  const config = ctx.configWith({ REDIS_URL: owned.url, FEED_ROOM_MAXLEN: '100000' });
  // No position checks: every entry must come through the live channel.
  const [a, b] = await Promise.all([startNode(config, { checkIntervalMs: 600_000 }), startNode(config, { checkIntervalMs: 600_000 })]);
  const roomId = randomUUID();
  const elsewhere = randomUUID();
  const subs = [collector(), collector(), collector(), collector()];
  for (const [i, c] of subs.entries()) await (i < 2 ? a : b).relay.subscribe({ kind: 'room', roomId }, undefined, c.sink);
  const other = collector();
  await a.relay.subscribe({ kind: 'room', roomId: elsewhere }, undefined, other.sink);
  const [fromA, fromB] = await Promise.all([numbered(a.store, roomId, 300, 0), numbered(b.store, roomId, 300, 1000), numbered(a.store, elsewhere, 50)]);
  const order = await streamIds(a.redis, createKeys(config.redis.keyPrefix).feedStream(roomId));
  assert.is(order.length, 600);
  assert.equal([...order].sort(compareIds), order);
  assert.equal(new Set(order), new Set([...fromA, ...fromB]));
  for (const c of subs) {
    await c.waitFor(600);
    assert.equal(c.entries.map((e) => e.id), order);
  }
  await other.waitFor(50);
  const keys = createKeys(config.redis.keyPrefix);
  const admin = new Redis(owned.url);
  const stats = await admin.info('commandstats');
  const shard = (await admin.call('PUBSUB', 'SHARDNUMSUB', keys.feedLive(roomId), keys.feedLive(elsewhere))) as (string | number)[];
  admin.disconnect();
  assert.not.match(stats, /cmdstat_xread:/, 'no XREAD was issued');
  assert.equal(shard, [keys.feedLive(roomId), 2, keys.feedLive(elsewhere), 1], 'node b follows only the room it has subscribers for');
  assert.is(b.relay.stats().channels, 1);
});

test('resuming with since replays exactly the entries after it, then continues live, each once and in order', async () => {
  const config = ctx.configWith({ FEED_ROOM_MAXLEN: '100000' });
  const node = await startNode(config, { readCount: 7 });
  const roomId = randomUUID();
  const ids = await numbered(node.store, roomId, 50);
  const position = await node.store.position({ kind: 'room', roomId });
  const c = collector();
  const { result } = await node.relay.subscribe({ kind: 'room', roomId }, { epoch: position.epoch, id: ids[19]! }, c.sink);
  assert.equal(result, { epoch: position.epoch, lastId: ids[49]!, recovered: true });
  assert.equal(c.entries.map((e) => e.id), ids.slice(20), 'replayed before the answer');
  const more = await numbered(node.store, roomId, 10, 50);
  await c.waitFor(40);
  assert.equal(c.entries.map((e) => e.id), [...ids.slice(20), ...more]);

  const fresh = collector();
  const other = await node.relay.subscribe({ kind: 'room', roomId }, { epoch: 'not-the-epoch', id: ids[0]! }, fresh.sink);
  assert.is(other.result.recovered, false, 'a foreign epoch is not recovered');
  assert.is(other.result.lastId, more[9]);
  assert.is(fresh.entries.length, 0);
});

test('a since further back than FEED_REPLAY_MAX entries answers recovered: false and replays nothing; one within it replays all', async () => {
  const config = ctx.configWith({ FEED_ROOM_MAXLEN: '100000', FEED_REPLAY_MAX: '40' });
  const node = await startNode(config, { readCount: 9 });
  const roomId = randomUUID();
  const ids = await numbered(node.store, roomId, 100);
  const { epoch } = await node.store.position({ kind: 'room', roomId });
  const far = collector();
  const refused = await node.relay.subscribe({ kind: 'room', roomId }, { epoch, id: ids[58]! }, far.sink);
  assert.equal(refused.result, { epoch, lastId: ids[99]!, recovered: false });
  assert.is(far.entries.length, 0, 'nothing replayed');
  const near = collector();
  const served = await node.relay.subscribe({ kind: 'room', roomId }, { epoch, id: ids[59]! }, near.sink);
  assert.ok(served.result.recovered, 'exactly FEED_REPLAY_MAX entries are replayed');
  assert.equal(near.entries.map((e) => e.id), ids.slice(60));
  const live = await numbered(node.store, roomId, 3, 100);
  await far.waitFor(3);
  assert.equal(far.entries.map((e) => e.id), live, 'the refused resume still gets live entries after lastId');
});

test('a replay stops whenever the subscriber is full and goes on only once it is ready', async () => {
  const config = ctx.configWith({ FEED_ROOM_MAXLEN: '100000' });
  const node = await startNode(config, { readCount: 25 });
  const roomId = randomUUID();
  const ids = await numbered(node.store, roomId, 45);
  const { epoch } = await node.store.position({ kind: 'room', roomId });
  const got: string[] = [];
  const seenAtReady: number[] = [];
  let release: (() => void) | undefined;
  const sink = {
    // "Full" after every 10 entries of the replay.
    deliver: (d: Delivery, replay: boolean) => {
      got.push(d.id);
      return !(replay && got.length % 10 === 0);
    },
    lost: () => undefined,
    ready: () => {
      seenAtReady.push(got.length);
      return new Promise<boolean>((r) => (release = () => r(true)));
    },
  };
  const subscribing = node.relay.subscribe({ kind: 'room', roomId }, { epoch, id: ids[0]! }, sink);
  for (let round = 1; round <= 4; round++) {
    await until(() => release !== undefined, `wait ${round}`);
    await new Promise((r) => setTimeout(r, 50));
    assert.is(got.length, round * 10, 'nothing more is sent while the subscriber is full');
    const r = release!;
    release = undefined;
    r();
  }
  const { result } = await subscribing;
  assert.ok(result.recovered);
  assert.equal(got, ids.slice(1));
  assert.equal(seenAtReady, [10, 20, 30, 40]);
});

test('a resume racing a stream of appends meets the live part without gap or overlap', async () => {
  const config = ctx.configWith({ FEED_ROOM_MAXLEN: '100000' });
  const node = await startNode(config, { readCount: 5 });
  const writer = await startNode(config);
  const roomId = randomUUID();
  const early = collector();
  await node.relay.subscribe({ kind: 'room', roomId }, undefined, early.sink);
  const first = await numbered(writer.store, roomId, 20);
  const position = await writer.store.position({ kind: 'room', roomId });
  const writing = numbered(writer.store, roomId, 300, 20);
  const late = collector();
  await new Promise((r) => setTimeout(r, 30));
  const { result } = await node.relay.subscribe({ kind: 'room', roomId }, { epoch: position.epoch, id: first[4]! }, late.sink);
  assert.ok(result.recovered);
  const rest = await writing;
  await late.waitFor(315);
  await early.waitFor(320);
  assert.equal(late.entries.map((e) => e.id), [...first.slice(5), ...rest]);
  assert.equal(early.entries.map((e) => e.id), [...first, ...rest]);
});

for (const busy of [false, true]) {
  test(`hundreds of subscribes to one ${busy ? 'busy' : 'quiet'} feed at once all succeed, and each continues without gap or duplicate`, async () => {
    const config = ctx.configWith({ FEED_ROOM_MAXLEN: '100000' });
    const node = await startNode(config);
    const writer = await startNode(config);
    const roomId = randomUUID();
    await numbered(writer.store, roomId, 5);
    let writing = busy;
    const written: string[] = [];
    const appends = (async () => {
      for (let i = 0; writing; i++) {
        written.push((await writer.store.append({ roomId, type: 'chat.message', actor, payload: { text: `w${i}` } })).id);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const subscribers = Array.from({ length: 400 }, () => collector());
    const outcomes = await Promise.allSettled(subscribers.map((c) => node.relay.subscribe({ kind: 'room', roomId }, undefined, c.sink)));
    writing = false;
    await appends;
    written.push(...(await numbered(writer.store, roomId, 10, 1000)));
    const refused = outcomes.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason));
    assert.equal(refused, [], 'no subscribe is refused');
    const last = written[written.length - 1]!;
    for (let i = 0; i < subscribers.length; i++) {
      const { result } = (outcomes[i] as PromiseFulfilledResult<Awaited<ReturnType<FeedRelay['subscribe']>>>).value;
      // Everything written after the position the answer named, in stream order, once.
      const expected = written.filter((id) => compareIds(id, result.lastId) > 0);
      await until(() => subscribers[i]!.entries.at(-1)?.id === last, `subscriber ${i} to reach the last entry`);
      assert.equal(
        subscribers[i]!.entries.map((e) => e.id),
        expected,
        `subscriber ${i}`,
      );
    }
  });
}

test('a lost live message is repaired from the stream before anything after it is delivered', async () => {
  const config = ctx.configWith({ FEED_ROOM_MAXLEN: '100000' });
  const node = await startNode(config);
  const roomId = randomUUID();
  const c = collector();
  await node.relay.subscribe({ kind: 'room', roomId }, undefined, c.sink);
  const before = await numbered(node.store, roomId, 3);
  await c.waitFor(3);
  const unheard = [await appendUnheard(node, roomId, 'lost 1'), await appendUnheard(node, roomId, 'lost 2')];
  // The fault happened: the stream holds them, the subscriber did not get them.
  await new Promise((r) => setTimeout(r, 100));
  assert.is(c.entries.length, 3, 'the lost messages were not delivered');
  assert.equal((await streamIds(node.redis, createKeys(ctx.keyPrefix).feedStream(roomId))).slice(3), unheard);
  const after = await numbered(node.store, roomId, 3, 10);
  await c.waitFor(8);
  assert.equal(c.entries.map((e) => e.id), [...before, ...unheard, ...after]);
  assert.equal(c.entries[3]!.payload, { text: 'lost 1' });
  assert.ok(node.relay.stats().repairs >= 1);
});

test('a live message lost at the end of a burst is repaired by the quiet-channel check', async () => {
  const config = ctx.configWith({ FEED_ROOM_MAXLEN: '100000' });
  const node = await startNode(config, { checkIntervalMs: 200 });
  const roomId = randomUUID();
  const c = collector();
  await node.relay.subscribe({ kind: 'room', roomId }, undefined, c.sink);
  const heard = await numbered(node.store, roomId, 2);
  const last = await appendUnheard(node, roomId, 'the last one');
  await c.waitFor(3, 10_000);
  assert.equal(c.entries.map((e) => e.id), [...heard, last]);
});

test('a dropped subscriber connection delays delivery but loses nothing, even entries published while it was down with nothing after them', async () => {
  const config = ctx.configWith({ FEED_ROOM_MAXLEN: '100000' });
  // No position checks: only the reconnect can reveal the last entries.
  const node = await startNode(config, { checkIntervalMs: 600_000 });
  const writer = await startNode(config);
  const roomId = randomUUID();
  const c = collector();
  await node.relay.subscribe({ kind: 'room', roomId }, undefined, c.sink);
  // This node's own subscriber connection, found by its local port (other nodes, of this file or of
  // another run on the shared Redis, have subscriber connections of the same name), and only while subscribed.
  const tryKill = async () => {
    const port = (node.subscriber as Redis).stream?.localPort; // one Redis here, never a Cluster
    if (!port) return 0;
    const list = String(await writer.redis.client('LIST'));
    const line = list.split('\n').find((l) => new RegExp(` addr=\\S*:${port} `).test(l));
    const id = line && /ssub=[1-9]/.test(line) ? /^id=(\d+)/.exec(line)?.[1] : undefined;
    // A connection that died on its own meanwhile is not counted as a kill.
    return id ? Number(await writer.redis.client('KILL', 'ID', id).catch(() => 0)) : 0;
  };
  // After a kill the connection comes back on its own backoff, which on a loaded machine can take
  // longer than a burst: each kill waits for it to be subscribed again, up to `stopWaiting`.
  const killSubscriber = async (stopWaiting: () => boolean) => {
    const deadline = Date.now() + EVENT_DEADLINE_MS;
    while (Date.now() < deadline && !stopWaiting()) {
      const killed = await tryKill();
      if (killed) return killed;
      await new Promise((r) => setTimeout(r, 20));
    }
    return 0;
  };
  let written = false;
  const writing = numbered(writer.store, roomId, 200).finally(() => (written = true));
  await new Promise((r) => setTimeout(r, 40));
  // Killed once as the 200 are written (if the burst ends first, they wait in the stream), and again
  // as often as it is back before the burst ends.
  let kills = await killSubscriber(() => false);
  const duringBurst = kills;
  while (!written && kills < 3) kills += await killSubscriber(() => written);
  const ids = await writing;
  await c.waitFor(200);
  // Down again, and the last entries are published before it is back.
  const beforeTail = await killSubscriber(() => false);
  kills += beforeTail;
  const tail = await numbered(writer.store, roomId, 5, 200);
  assert.ok(duringBurst === 1 && beforeTail === 1, `the subscriber connection was killed (${kills} kills)`);
  await c.waitFor(205);
  assert.equal(c.entries.map((e) => e.id), [...ids, ...tail]);
});

test('a resume point trimmed out of the stream is served from the archive; an archive hole answers recovered: false', async () => {
  const node = await startNode(ctx.config);
  const keys = createKeys(ctx.keyPrefix);
  const roomId = await createRoom();
  const archiver = await startArchiver(ctx.config);
  const ids = await archivedAlong(node.store, roomId, 400);
  const inStream = await streamIds(node.redis, keys.feedStream(roomId));
  assert.ok(inStream.length < 300, `the stream was trimmed (holds ${inStream.length})`);
  assert.ok(compareIds(inStream[0]!, ids[10]!) > 0);
  assert.ok(archiver.stats().archived >= 400);

  const position = await node.store.position({ kind: 'room', roomId });
  const c = collector();
  const { result } = await node.relay.subscribe({ kind: 'room', roomId }, { epoch: position.epoch, id: ids[9]! }, c.sink);
  assert.ok(result.recovered);
  assert.equal(c.entries.map((e) => e.id), ids.slice(10));
  assert.equal(c.entries[0]!.payload, { text: '#10' });
  assert.equal(c.entries[0]!.actor, actor);
  const live = await numbered(node.store, roomId, 5, 400);
  await c.waitFor(395);
  assert.equal(c.entries.slice(390).map((e) => e.id), live);

  // A hole in the archive: the chain cannot be proven, so no replay.
  await ctx.db().deleteFrom('activity').where('room_id', '=', roomId).where('entry_id', '=', ids[50]!).execute();
  const holed = collector();
  const second = await node.relay.subscribe({ kind: 'room', roomId }, { epoch: position.epoch, id: ids[9]! }, holed.sink);
  assert.is(second.result.recovered, false);
  assert.is(second.result.lastId, live[4]);
  assert.is(holed.entries.length, 0);
});

function service(node: Node, access: FeedAccess = { roleOf: async () => 'member' as const, isOpen: async () => true }) {
  return createFeedService({
    store: node.store,
    relay: node.relay,
    activity: createActivityRepository(ctx.db()),
    access,
    isAdmin: () => false,
    config: ctx.config,
    logger,
  });
}

test('a connection in more rooms than the bound remembers at most ROLES_REMEMBERED roles, forgets rooms it left, and is still served in every room', async () => {
  const node = await startNode(ctx.config);
  let asked = 0;
  const feed = service(node, { roleOf: async () => (asked++, 'member' as const), isOpen: async () => true });
  const inRooms = new Set<string>();
  const roles = new Map<string, 'host' | 'member'>();
  const user = { id: randomUUID(), name: 'Wanderer', inRoom: (roomId: string) => inRooms.has(roomId), roles };
  const rooms = Array.from({ length: ROLES_REMEMBERED + 16 }, () => randomUUID());
  for (const [i, roomId] of rooms.entries()) {
    inRooms.add(roomId);
    await feed.publish(user, { roomId, type: 'chat.message', payload: { text: 'hi' }, clientMsgId: `m-${i}` });
    assert.ok(roles.size <= ROLES_REMEMBERED, `${roles.size} roles remembered`);
  }
  assert.is(asked, rooms.length);
  // The latest room is answered from memory; the first, forgotten, is asked again.
  await feed.publish(user, { roomId: rooms.at(-1)!, type: 'chat.message', payload: { text: 'again' }, clientMsgId: 'again-last' });
  assert.is(asked, rooms.length);
  await feed.publish(user, { roomId: rooms[0]!, type: 'chat.message', payload: { text: 'again' }, clientMsgId: 'again-first' });
  assert.is(asked, rooms.length + 1);
  // Out of a room (kicked, left): its role is dropped when next asked.
  inRooms.delete(rooms.at(-2)!);
  await feed.publish(user, { roomId: rooms.at(-2)!, type: 'chat.message', payload: { text: 'gone' }, clientMsgId: 'gone' });
  assert.is(roles.has(rooms.at(-2)!), true, 'asked again and remembered (the access here says member)');
  assert.is(asked, rooms.length + 2);
});

test('history is newest first, from the stream while it holds the range and from PostgreSQL beyond it', async () => {
  const node = await startNode(ctx.config);
  const roomId = await createRoom();
  await startArchiver(ctx.config);
  const ids = await archivedAlong(node.store, roomId, 250);
  const seen: string[] = [];
  let before: string | undefined;
  let truncated: boolean | undefined;
  for (let pages = 0; pages < 10; pages++) {
    const page = await service(node).history(actor, { roomId, ...(before ? { before } : {}), limit: 60 });
    seen.push(...page.entries.map((e) => e.id));
    truncated = page.truncated;
    if (!page.nextBefore) break;
    before = page.nextBefore;
  }
  assert.equal(seen, [...ids].reverse());
  assert.is(truncated, undefined, 'the whole feed is there: not truncated');
});

test('history kept exactly to a page boundary ends with an empty page that says truncated when older entries are gone, and not when the feed starts there', async () => {
  const node = await startNode(ctx.config);
  const keys = createKeys(ctx.keyPrefix);
  const feed = service(node);
  const pages = async (roomId: string, limit: number) => {
    const out: { ids: string[]; nextBefore?: string; truncated?: true }[] = [];
    let before: string | undefined;
    do {
      const page = await feed.history(actor, { roomId, ...(before ? { before } : {}), limit });
      out.push({ ids: page.entries.map((e) => e.id), ...(page.nextBefore ? { nextBefore: page.nextBefore } : {}), ...(page.truncated ? { truncated: page.truncated } : {}) });
      before = page.nextBefore;
    } while (before && out.length < 10);
    return out;
  };

  // The stream keeps the last 4 of 8 entries, the archive none: the first 4 are gone.
  const trimmed = randomUUID();
  const all = await numbered(node.store, trimmed, 8);
  await node.redis.xtrim(keys.feedStream(trimmed), 'MAXLEN', 4);
  assert.equal(await pages(trimmed, 4), [
    { ids: all.slice(4).reverse(), nextBefore: all[4]! },
    { ids: [], truncated: true },
  ]);

  // The archive keeps 3 chained entries whose predecessor is gone (past retention), the stream 3 of today.
  const archived = await createRoom();
  const activity = createActivityRepository(ctx.db());
  const old = Date.now() - 2 * 86_400_000;
  const oldIds = [1, 2, 3].map((i) => `${old + i}-0`);
  const { epoch } = await node.store.position({ kind: 'room', roomId: archived });
  await activity.ensurePartitions([old]);
  await activity.insertBatch(oldIds.map((entryId, i) => ({ roomId: archived, entryId, epoch, prev: i === 0 ? `${old}-0` : oldIds[i - 1]!, type: 'chat.message', actor, payload: '{"text":"old"}', ts: old + i + 1 })));
  const fresh = await numbered(node.store, archived, 3);
  assert.equal(await pages(archived, 3), [
    { ids: [...fresh].reverse(), nextBefore: fresh[0]! },
    { ids: [...oldIds].reverse(), nextBefore: oldIds[0]! },
    { ids: [], truncated: true },
  ]);

  // Every entry since the first is kept: the empty last page is the start of the feed.
  const whole = randomUUID();
  const first = await numbered(node.store, whole, 4);
  assert.equal(await pages(whole, 4), [
    { ids: [...first].reverse(), nextBefore: first[0]! },
    { ids: [] },
  ]);
});

test('archive partitions past FEED_ARCHIVE_RETENTION_DAYS are dropped; history that reached the start of the feed then says truncated, and a resume that was recovered answers recovered: false', async () => {
  // Keys of its own: only this test's worker archives this room, so its first round (the retention, then the room) is what is waited for.
  const config = ctx.configWith({ KEY_PREFIX: `${ctx.keyPrefix}retention:`, FEED_ARCHIVE_RETENTION_DAYS: '2' });
  const node = await startNode(config);
  const keys = createKeys(config.redis.keyPrefix);
  const roomId = await createRoom();
  const activity = createActivityRepository(ctx.db());
  const day = 86_400_000;
  // Five entries of five days ago, archived (the stream no longer holds them), and the stream going on
  // from them in the same epoch: its first entry links to the last old one, as if appended after it.
  const old = Date.now() - 5 * day;
  const oldIds = [0, 1, 2, 3, 4].map((i) => `${old + i}-0`);
  const { epoch } = await node.store.position({ kind: 'room', roomId });
  await activity.ensurePartitions([old]);
  await activity.insertBatch(oldIds.map((entryId, i) => ({ roomId, entryId, epoch, prev: i === 0 ? '0-0' : oldIds[i - 1]!, type: 'chat.message', actor, payload: '{"text":"old"}', ts: old + i })));
  await node.redis.hset(keys.feedMeta(roomId), 'last', oldIds[4]!, 'n', 5, 'archived', oldIds[4]!);
  const fresh = await numbered(node.store, roomId, 3);
  assert.is((await node.store.after({ kind: 'room', roomId }, '0-0', 1))[0]!.prev, oldIds[4]!, 'the stream links to the archived entries');

  // Before the retention runs: the whole feed, and a resume from an old entry replays the rest.
  const page = await service(node).history(actor, { roomId, limit: 50 });
  assert.equal(page.entries.map((e) => e.id), [...fresh].reverse().concat([...oldIds].reverse()));
  assert.is(page.truncated, undefined);
  const kept = collector();
  const first = await node.relay.subscribe({ kind: 'room', roomId }, { epoch, id: oldIds[1]! }, kept.sink);
  first.subscription.close();
  assert.is(first.result.recovered, true);
  assert.equal(kept.entries.map((e) => e.id), [...oldIds.slice(2), ...fresh]);

  // The worker's first round applies the retention, then archives today's entries (the only worker with these keys).
  const archiver = await startArchiver(config);
  await until(async () => {
    const rows = await ctx.db().selectFrom('activity').select('entry_id').where('room_id', '=', roomId).where('entry_id', 'in', fresh).execute();
    return rows.length === fresh.length;
  }, 'today\'s entries to be archived');
  assert.is(archiver.stats().lostToTrim, 0);

  const after = await service(node).history(actor, { roomId, limit: 50 });
  assert.equal(after.entries.map((e) => e.id), [...fresh].reverse(), 'the entries past retention are gone from history');
  assert.is(after.truncated, true, 'older entries existed and are gone');
  const c = collector();
  const resumed = await node.relay.subscribe({ kind: 'room', roomId }, { epoch, id: oldIds[1]! }, c.sink);
  resumed.subscription.close();
  assert.is(resumed.result.recovered, false);
  assert.is(c.entries.length, 0);

  const partitions = await sql<{ relname: string }>`select relname from pg_class where relname like 'activity_p%'`.execute(ctx.db());
  const names = partitions.rows.map((r) => r.relname);
  assert.not.ok(names.includes(partitionName(dayOf(old))), 'the old day\'s partition is gone');
  assert.ok(names.includes(partitionName(dayOf(Date.now() + 3 * day))), 'partitions exist three days ahead');
  assert.is(await activity.count(roomId), fresh.length);
});

test('an entry PostgreSQL refuses goes to the dead-letter stream, and every other entry and room keeps being archived', async () => {
  const config = ctx.configWith({ KEY_PREFIX: `${ctx.keyPrefix}dead:`, FEED_ARCHIVE_BATCH: '4' });
  const node = await startNode(config);
  const keys = createKeys(config.redis.keyPrefix);
  const [bad, good] = [await createRoom(), await createRoom()];
  const before = await numbered(node.store, bad, 3);
  const poison = await node.store.append({ roomId: bad, type: 'chat.message', actor, payload: { text: 'nul \u0000 inside' } });
  const afterIds = await numbered(node.store, bad, 3, 10);
  const other = await numbered(node.store, good, 6);
  const archiver = await startArchiver(config);
  const activity = createActivityRepository(ctx.db());
  await until(async () => (await activity.count(bad)) === 6 && (await activity.count(good)) === 6, 'both rooms archived');
  const rows = await ctx.db().selectFrom('activity').select('entry_id').where('room_id', '=', bad).execute();
  assert.equal(new Set(rows.map((r) => r.entry_id)), new Set([...before, ...afterIds]));
  const dead = (await node.redis.xrange(keys.feedArchiveDead, '-', '+')) as [string, string[]][];
  assert.is(dead.length, 1);
  const fields = Object.fromEntries(dead[0]![1].reduce<[string, string][]>((acc, v, i, all) => (i % 2 === 0 ? [...acc, [v, all[i + 1]!]] : acc), []));
  assert.is(fields.r, bad);
  assert.is(fields.i, poison.id);
  assert.match(fields.error!, /22P05|unsupported Unicode/);
  assert.is(archiver.stats().deadLetters, 1);
  const otherRows = await ctx.db().selectFrom('activity').select('entry_id').where('room_id', '=', good).execute();
  assert.equal(new Set(otherRows.map((r) => r.entry_id)), new Set(other), 'the other room is archived whole');
  await until(async () => (await archiver.lag()).rooms === 0, 'nothing left to archive');
  // Later entries of the room go on being archived.
  const later = await numbered(node.store, bad, 2, 20);
  await until(async () => (await activity.count(bad)) === 8, 'later entries archived');
  const laterRows = await ctx.db().selectFrom('activity').select('entry_id').where('room_id', '=', bad).execute();
  assert.ok(later.every((id) => laterRows.some((r) => r.entry_id === id)), 'the entries after the refused one are archived');
  await deleteByPrefix(ctx.redis(), `${ctx.keyPrefix}dead:`);
});

test('archive lag is the age of the oldest entry not archived; entries of rooms PostgreSQL does not know pass without a row', async () => {
  const config = ctx.configWith({ KEY_PREFIX: `${ctx.keyPrefix}lag:` });
  const node = await startNode(config);
  const known = await createRoom();
  await numbered(node.store, known, 30);
  await numbered(node.store, randomUUID(), 5);
  const parts = await archiverParts(config, ctx.db());
  cleanups.push(async () => {
    await closeRedis(parts.redis);
  });
  const idle = createArchiver({ ...parts, db: ctx.db(), config });
  await until(async () => (await idle.lag()).rooms === 2, 'both rooms to be hinted');
  await new Promise((r) => setTimeout(r, 300));
  assert.ok((await idle.lag()).seconds >= 0.2, 'before any worker ran, the oldest entry waits');
  const running = await startArchiver(config);
  await until(async () => (await running.lag()).rooms === 0, 'lag to reach 0');
  assert.is((await running.lag()).seconds, 0);
  assert.is(await createActivityRepository(ctx.db()).count(known), 30);
  await deleteByPrefix(ctx.redis(), `${ctx.keyPrefix}lag:`);
});

test('archived entries are copied into the global feed once each, in each room\'s order', async () => {
  const config = ctx.configWith({ KEY_PREFIX: `${ctx.keyPrefix}global:` });
  const node = await startNode(config);
  const globalSub = collector();
  await node.relay.subscribe({ kind: 'global' }, undefined, globalSub.sink);
  const [r1, r2] = [await createRoom(), randomUUID()];
  const [a, b] = await Promise.all([numbered(node.store, r1, 20), numbered(node.store, r2, 15)]);
  const archiver = await startArchiver(config);
  await globalSub.waitFor(35);
  assert.equal(globalSub.entries.filter((e) => e.roomId === r1).map((e) => e.payload.text), a.map((_, i) => `#${i}`));
  assert.equal(globalSub.entries.filter((e) => e.roomId === r2).map((e) => e.payload.text), b.map((_, i) => `#${i}`));
  assert.ok(globalSub.entries.every((e) => e.scope === 'global'));
  // Copying the same entries again (a worker that died before moving its cursor) adds nothing.
  const records = await node.store.records(r1, (await node.store.position({ kind: 'room', roomId: r1 })).epoch, '0-0', 100);
  assert.is(await node.store.copyToGlobal(r1, records), 0);
  assert.is(await node.redis.xlen(createKeys(config.redis.keyPrefix).feedGlobal), 35);
  assert.ok(archiver.stats().archived >= 20);
  await deleteByPrefix(ctx.redis(), `${ctx.keyPrefix}global:`);
});

test('an archive worker killed between its insert and moving the cursor: another takes over, nothing lost, nothing stored twice', async () => {
  const env = { ...ctx.env, KEY_PREFIX: `${ctx.keyPrefix}kill:`, FEED_ROOM_MAXLEN: '100000', FEED_ARCHIVE_BATCH: '50', FEED_ARCHIVE_CLAIM_IDLE_MS: '300' };
  const config = loadConfig(env);
  const node = await startNode(config);
  const roomId = await createRoom();
  const ids = await numbered(node.store, roomId, 120);
  const child = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname], {
    env: { PATH: process.env.PATH ?? '', FEED_ARCHIVE_CHILD_ENV: JSON.stringify(env) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  await until(() => out.includes('INSERTED'), `the doomed worker to insert a batch (${out})`, 30_000);
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
  const activity = createActivityRepository(ctx.db());
  assert.is(await activity.count(roomId), 50, 'the killed worker committed one batch');
  const keys = createKeys(config.redis.keyPrefix);
  assert.is(await ctx.redis().hget(keys.feedMeta(roomId), 'archived'), null, 'and never moved the room\'s cursor');

  const survivor = await startArchiver(config, 'survivor');
  await until(async () => (await activity.count(roomId)) === 120, 'the survivor to finish');
  const rows = await ctx.db().selectFrom('activity').select('entry_id').where('room_id', '=', roomId).execute();
  assert.is(rows.length, 120);
  assert.equal(new Set(rows.map((r) => r.entry_id)), new Set(ids));
  assert.is(await ctx.redis().hget(keys.feedMeta(roomId), 'archived'), ids[119]);
  assert.ok(survivor.stats().archived >= 70);
  await deleteByPrefix(ctx.redis(), `${ctx.keyPrefix}kill:`);
});

test('when Redis loses its data the epoch changes: live subscribers are told, and a resume answers recovered: false', async () => {
  const owned: OwnedRedis = await startRedisServer();
  cleanups.push(() => owned.dispose());
  const config = ctx.configWith({ REDIS_URL: owned.url });
  const node = await startNode(config);
  const roomId = randomUUID();
  const ids = await numbered(node.store, roomId, 20);
  const before = await node.store.position({ kind: 'room', roomId });
  const c = collector();
  await node.relay.subscribe({ kind: 'room', roomId }, { epoch: before.epoch, id: ids[9]! }, c.sink);
  await c.waitFor(10);

  const admin = new Redis(owned.url, { maxRetriesPerRequest: 1 });
  await admin.flushall();
  admin.disconnect();
  const after = await numbered(node.store, roomId, 3, 20);
  await until(() => c.lost.length > 0, 'the live subscriber to be told');
  assert.equal(c.lost, ['epoch_changed']);
  assert.is(c.entries.length, 10, 'no entry of the new epoch reached the old subscription');

  const again = collector();
  const { result } = await node.relay.subscribe({ kind: 'room', roomId }, { epoch: before.epoch, id: ids[19]! }, again.sink);
  assert.is(result.recovered, false);
  assert.is.not(result.epoch, before.epoch);
  assert.is(result.lastId, after[2]);
  const next = await numbered(node.store, roomId, 2, 30);
  await again.waitFor(2);
  assert.equal(again.entries.map((e) => e.id), next);
});

test.run();
