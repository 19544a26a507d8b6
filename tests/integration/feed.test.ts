import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { FeedEntry } from '../../shared/schemas.ts';
import { loadConfig, type Config } from '../../server/config.ts';
import { createActivityRepository } from '../../server/feed/activity-repository.ts';
import { ARCHIVE_GROUP, createArchiver, type Archiver } from '../../server/feed/archiver.ts';
import { createFeedRelay, type FeedRelay, type LostReason } from '../../server/feed/feed-relay.ts';
import { createFeedStore, type FeedStore } from '../../server/feed/feed-store.ts';
import { compareIds } from '../../server/feed/stream-ids.ts';
import { createLogger } from '../../server/logger.ts';
import { closeRedis, connectRedis, createRedisClient } from '../../server/redis/connections.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import { createTestContext, deleteByPrefix, type TestContext } from '../support/context.ts';
import { startRedisServer, type OwnedRedis } from '../support/redis-server.ts';

// A child process of this file acts as an archive worker that is SIGKILLed between its insert and its XACK.
if (process.env.FEED_ARCHIVE_CHILD_ENV) {
  const config = loadConfig(JSON.parse(process.env.FEED_ARCHIVE_CHILD_ENV) as Record<string, string>);
  const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
  const { createDb } = await import('../../server/db/database.ts');
  const { db } = createDb(config, logger);
  const redis = createRedisClient(config, logger, 'command');
  const blocking = createRedisClient(config, logger, 'blocking');
  await Promise.all([connectRedis(redis, config), connectRedis(blocking, config)]);
  const worker = createArchiver({
    redis,
    blocking,
    activity: createActivityRepository(db),
    keys: createKeys(config.redis.keyPrefix),
    config,
    logger,
    consumer: 'doomed',
    hooks: {
      afterInsert: async (records) => {
        process.stdout.write(`INSERTED ${records.length}\n`);
        await new Promise(() => undefined); // never acknowledges: killed here
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
  redis: Redis;
  store: FeedStore;
  relay: FeedRelay;
  blocking: Redis;
}

async function startNode(config: Config, options: { readCount?: number } = {}, blockingName?: string): Promise<Node> {
  const redis = createRedisClient(config, logger, 'command');
  const blocking = createRedisClient(config, logger, 'blocking', blockingName ? { connectionName: blockingName } : {});
  await Promise.all([connectRedis(redis, config), connectRedis(blocking, config)]);
  const store = createFeedStore({ redis, scripts: createScripts(redis), keys: createKeys(config.redis.keyPrefix), config });
  const relay = createFeedRelay({ store, redis, blocking, archive: createActivityRepository(ctx.db()), replayMax: config.feed.replayMax, logger, ...options });
  relay.start();
  cleanups.push(async () => {
    await relay.stop();
    blocking.disconnect();
    await closeRedis(redis);
  });
  return { config, redis, store, relay, blocking };
}

async function startArchiver(config: Config, consumer?: string): Promise<Archiver> {
  const redis = createRedisClient(config, logger, 'command');
  const blocking = createRedisClient(config, logger, 'blocking');
  await Promise.all([connectRedis(redis, config), connectRedis(blocking, config)]);
  const archiver = createArchiver({ redis, blocking, activity: createActivityRepository(ctx.db()), keys: createKeys(config.redis.keyPrefix), config, logger, ...(consumer ? { consumer } : {}) });
  await archiver.start();
  cleanups.push(async () => {
    await archiver.stop();
    blocking.disconnect();
    await closeRedis(redis);
  });
  return archiver;
}

function collector() {
  const entries: FeedEntry[] = [];
  const lost: LostReason[] = [];
  return {
    entries,
    lost,
    sink: { deliver: (e: FeedEntry) => entries.push(e), lost: (r: LostReason) => lost.push(r) },
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

const streamIds = async (redis: Redis, key: string) => ((await redis.xrange(key, '-', '+')) as [string, string[]][]).map(([id]) => id);

test.before(async () => {
  ctx = createTestContext({ FEED_ROOM_MAXLEN: '10' });
  await ctx.migrate();
});
test.after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await ctx.cleanup();
});

test('an entry is in the room stream, linked to the one before, and its id is the stream id', async () => {
  const node = await startNode(ctx.config);
  const roomId = randomUUID();
  const a = await node.store.append({ roomId, type: 'chat.message', actor, payload: { text: 'one' } });
  const b = await node.store.append({ roomId, type: 'reaction', actor, payload: { emoji: '👍' } });
  const raw = (await node.redis.xrange(createKeys(ctx.keyPrefix).feedStream(roomId), '-', '+')) as [string, string[]][];
  assert.equal(raw.map(([id]) => id), [a.id, b.id]);
  const page = await node.store.after({ kind: 'room', roomId }, '0-0', 10);
  assert.equal(page.map((s) => s.prev), ['0-0', a.id]);
  assert.equal(page[1]!.entry, { roomId, id: b.id, type: 'reaction', actor, payload: { emoji: '👍' }, ts: Number(b.id.split('-')[0]) });
  assert.is(a.epoch, b.epoch);
  assert.ok((await node.redis.pttl(createKeys(ctx.keyPrefix).feedStream(roomId))) > 0, 'the room stream expires when idle');
});

test('a repeated clientMsgId from the same user returns the first id and adds nothing', async () => {
  const node = await startNode(ctx.config);
  const keys = createKeys(ctx.keyPrefix);
  const roomId = randomUUID();
  const input = { roomId, type: 'chat.message', actor, payload: { text: 'once' }, idempotency: { key: actor.id, clientMsgId: 'm-1' } };
  const first = await node.store.append(input);
  const globalBefore = await node.redis.xlen(keys.feedGlobal);
  const retries = await Promise.all([1, 2, 3].map(() => node.store.append({ ...input, payload: { text: 'changed' } })));
  for (const r of retries) {
    assert.is(r.id, first.id);
    assert.ok(r.duplicate);
  }
  assert.is(await node.redis.xlen(keys.feedStream(roomId)), 1);
  assert.is(await node.redis.xlen(keys.feedGlobal), globalBefore);
  const ttl = await node.redis.ttl(keys.feedMsgId(roomId, actor.id, 'm-1'));
  assert.ok(ttl > 86_000 && ttl <= 86_400, `idempotency TTL ${ttl}`);
  const other = await node.store.append({ ...input, idempotency: { key: randomUUID(), clientMsgId: 'm-1' } });
  assert.is.not(other.id, first.id, 'another user may use the same clientMsgId');
});

test('two nodes appending concurrently: every subscriber on both nodes sees the one stream order, without gap or duplicate', async () => {
  const config = ctx.configWith({ FEED_ROOM_MAXLEN: '100000' });
  const [a, b] = await Promise.all([startNode(config), startNode(config)]);
  const roomId = randomUUID();
  const subs = [collector(), collector(), collector(), collector()];
  for (const [i, c] of subs.entries()) await (i < 2 ? a : b).relay.subscribe({ kind: 'room', roomId }, undefined, c.sink);
  const [fromA, fromB] = await Promise.all([numbered(a.store, roomId, 300, 0), numbered(b.store, roomId, 300, 1000)]);
  const order = await streamIds(a.redis, createKeys(ctx.keyPrefix).feedStream(roomId));
  assert.is(order.length, 600);
  assert.equal([...order].sort(compareIds), order);
  assert.equal(new Set(order), new Set([...fromA, ...fromB]));
  for (const c of subs) {
    await c.waitFor(600);
    assert.equal(c.entries.map((e) => e.id), order);
  }
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

test('a dropped blocking connection delays delivery but loses nothing', async () => {
  const config = ctx.configWith({ FEED_ROOM_MAXLEN: '100000' });
  // The tail's connection carries a name of its own, so it can be found and killed from outside.
  const tailName = `feed-test-tail-${randomUUID().slice(0, 8)}`;
  const node = await startNode(config, {}, tailName);
  const writer = await startNode(config);
  const roomId = randomUUID();
  const c = collector();
  await node.relay.subscribe({ kind: 'room', roomId }, undefined, c.sink);

  /** Kill the tail's current connection: resolves 1 when one was killed, 0 when none was open. */
  const killTail = async (): Promise<number> => {
    const list = String(await writer.redis.client('LIST'));
    const id = /(?:^|\n)id=(\d+) [^\n]*\bname=(\S+)/g;
    for (const m of list.matchAll(id)) if (m[2] === tailName) return Number(await writer.redis.client('KILL', 'ID', m[1]!));
    return 0;
  };

  // Appends run until three kills, each made once more entries were delivered after the previous one.
  const ids: string[] = [];
  let kills = 0;
  let stopAt = Infinity;
  const appends = (async () => {
    for (let i = 0; i < stopAt; i++) {
      ids.push((await writer.store.append({ roomId, type: 'chat.message', actor, payload: { text: `#${i}` } })).id);
      await new Promise((r) => setImmediate(r));
    }
  })();
  try {
    for (let attempt = 0; kills < 3 && attempt < 30; attempt++) {
      const delivered = c.entries.length;
      await until(() => c.entries.length >= delivered + 20, `delivery to go on after ${kills} kills`);
      kills += await killTail();
    }
  } finally {
    stopAt = ids.length + 50; // and some more after the last kill
    await appends;
  }
  assert.is(kills, 3, 'three connections of the tail were killed');
  await c.waitFor(ids.length);
  assert.equal(c.entries.map((e) => e.id), ids);
});

test('a resume point trimmed out of the stream is served from the archive; an archive hole answers recovered: false', async () => {
  const node = await startNode(ctx.config);
  const keys = createKeys(ctx.keyPrefix);
  const roomId = await createRoom();
  const ids = await numbered(node.store, roomId, 400);
  const archiver = await startArchiver(ctx.config);
  await until(async () => (await archiver.lag()) === 0, 'the archive to catch up');
  const inStream = await streamIds(node.redis, keys.feedStream(roomId));
  assert.ok(inStream.length < 300, `the stream was trimmed (holds ${inStream.length})`);
  assert.ok(compareIds(inStream[0]!, ids[10]!) > 0);
  assert.is(await createActivityRepository(ctx.db()).count(roomId), 400);

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

test('history is newest first, from the stream while it holds the range and from PostgreSQL beyond it', async () => {
  const node = await startNode(ctx.config);
  const roomId = await createRoom();
  const ids = await numbered(node.store, roomId, 250);
  const archiver = await startArchiver(ctx.config);
  await until(async () => (await archiver.lag()) === 0, 'the archive to catch up');
  const { createFeedService } = await import('../../server/feed/feed-service.ts');
  const service = createFeedService({
    store: node.store,
    relay: node.relay,
    activity: createActivityRepository(ctx.db()),
    access: { roleOf: async () => 'member' as const, isOpen: async () => true },
    isAdmin: () => false,
    config: ctx.config,
    logger,
  });
  const seen: string[] = [];
  let before: string | undefined;
  for (let pages = 0; pages < 10; pages++) {
    const page = await service.history(actor, { roomId, ...(before ? { before } : {}), limit: 60 });
    seen.push(...page.entries.map((e) => e.id));
    if (!page.nextBefore) break;
    before = page.nextBefore;
  }
  assert.equal(seen, [...ids].reverse());
});

test('archive lag counts entries not yet archived, and entries of unknown rooms are acknowledged without a row', async () => {
  const config = ctx.configWith({ KEY_PREFIX: `${ctx.keyPrefix}lag:` });
  const node = await startNode(config);
  const known = await createRoom();
  await numbered(node.store, known, 30);
  await numbered(node.store, randomUUID(), 5);
  const redis = ctx.redis();
  const archiver = createArchiver({ redis, blocking: redis, activity: createActivityRepository(ctx.db()), keys: createKeys(config.redis.keyPrefix), config, logger });
  assert.is(await archiver.lag(), 35, 'before any worker ran, every entry is lag');
  const running = await startArchiver(config);
  await until(async () => (await running.lag()) === 0, 'lag to reach 0');
  assert.is(await createActivityRepository(ctx.db()).count(known), 30);
  await deleteByPrefix(redis, `${ctx.keyPrefix}lag:`);
});

test('an archive worker killed between its insert and its acknowledgement: another takes over, nothing lost, nothing stored twice', async () => {
  const config = ctx.configWith({ KEY_PREFIX: `${ctx.keyPrefix}kill:`, FEED_ARCHIVE_BATCH: '50', FEED_ARCHIVE_CLAIM_IDLE_MS: '300' });
  const node = await startNode(config);
  const roomId = await createRoom();
  const ids = await numbered(node.store, roomId, 120);
  const env = { ...ctx.env, KEY_PREFIX: `${ctx.keyPrefix}kill:`, FEED_ARCHIVE_BATCH: '50', FEED_ARCHIVE_CLAIM_IDLE_MS: '300' };
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
  const pending = (await ctx.redis().xpending(createKeys(config.redis.keyPrefix).feedGlobal, ARCHIVE_GROUP)) as [number, ...unknown[]];
  assert.is(pending[0], 50, 'and never acknowledged it');

  const survivor = await startArchiver(config, 'survivor');
  await until(async () => (await survivor.lag()) === 0, 'the survivor to finish');
  const rows = await ctx.db().selectFrom('activity').select('entry_id').where('room_id', '=', roomId).execute();
  assert.is(rows.length, 120);
  assert.equal(new Set(rows.map((r) => r.entry_id)), new Set(ids));
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
