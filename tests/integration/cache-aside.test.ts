import { randomUUID } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createApp } from '../../server/app.ts';
import { createCachedLoader } from '../../server/cache/cache-aside.ts';
import { createRoomLoader, createUserProfileLoader, loadUserProfiles, type LoaderDeps } from '../../server/cache/loaders.ts';
import type { Db } from '../../server/db/database.ts';
import { createMetrics, type Metrics } from '../../server/metrics.ts';
import { createKeys } from '../../server/redis/keys.ts';
import { createScripts } from '../../server/redis/scripts.ts';
import type { UserView } from '../../shared/schemas.ts';
import { counterValue, insertRoom, insertUser } from '../support/cache.ts';
import { createTestContext, type TestContext } from '../support/context.ts';
import { createQueryCounter, type QueryCounter } from '../support/query-counter.ts';

const test = suite('cache/cache-aside');
let ctx: TestContext;
let counter: QueryCounter;
let db: Db;

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  counter = createQueryCounter();
  db = ctx.db().withPlugin(counter.plugin);
});
test.after(async () => {
  await ctx.cleanup();
});

function deps(metrics: Metrics = createMetrics(), more: Partial<LoaderDeps> = {}): LoaderDeps {
  const redis = ctx.redis();
  return { db, redis, scripts: createScripts(redis), keys: createKeys(ctx.keyPrefix), metrics, config: ctx.config, ...more };
}

const keys = () => createKeys(ctx.keyPrefix);

test('a miss loads from PostgreSQL once and the next read is a hit', async () => {
  const metrics = createMetrics();
  const users = createUserProfileLoader(deps(metrics));
  const id = await insertUser(db, 'Ada');
  counter.reset();
  const first = await users.get(id);
  assert.equal(first, { value: { id, name: 'Ada', kind: 'registered', username: first.value!.username }, stale: false });
  assert.is(counter.countFrom('users'), 1);
  const second = await users.get(id);
  assert.equal(second, first);
  assert.is(counter.countFrom('users'), 1, 'the second read is served by Redis');
  assert.is(await counterValue(metrics.cache.misses, { loader: 'user' }), 1);
  assert.is(await counterValue(metrics.cache.hits, { loader: 'user' }), 1);
  assert.is(await counterValue(metrics.cache.loads, { loader: 'user' }), 1);
});

test('a cached user entry holds the public fields only, never the password hash', async () => {
  const users = createUserProfileLoader(deps());
  const id = await insertUser(db, 'Grace', { passwordHash: 'scrypt$secret-hash-value' });
  await users.get(id);
  const raw = await ctx.redis().get(keys().cache('user', id));
  assert.ok(raw, 'the entry is stored');
  assert.not.match(raw!, 'secret-hash-value');
  assert.not.match(raw!, 'password');
  const stored = JSON.parse(raw!.slice(raw!.indexOf(':') + 1)) as Record<string, unknown>;
  assert.equal(Object.keys(stored).sort(), ['id', 'kind', 'name', 'username']);
});

test('a missing row is cached as not found, and creating it clears that', async () => {
  const metrics = createMetrics();
  const users = createUserProfileLoader(deps(metrics));
  const id = randomUUID();
  counter.reset();
  assert.equal(await users.get(id), { value: null, stale: false });
  assert.equal(await users.get(id), { value: null, stale: false });
  assert.is(counter.countFrom('users'), 1, 'the second not-found answer comes from the negative entry');
  const ttl = await ctx.redis().pttl(keys().cache('user', id));
  const limit = (ctx.config.cache.negativeTtlSeconds * 1.1 + ctx.config.cache.hardStaleSeconds) * 1000;
  assert.ok(ttl > 0 && ttl <= limit, `negative entry TTL ${ttl} ms within ${limit} ms`);

  await insertUser(db, 'Late', { id });
  await users.invalidate(id);
  const created = await users.get(id);
  assert.is(created.value?.name, 'Late');
});

test('an update is visible on the next read after its transaction commits and the key is invalidated', async () => {
  const users = createUserProfileLoader(deps());
  const other = createUserProfileLoader(deps());
  const id = await insertUser(db, 'Before');
  assert.is((await users.get(id)).value?.name, 'Before');
  assert.is((await other.get(id)).value?.name, 'Before');
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('users').set({ display_name: 'After' }).where('id', '=', id).execute();
  });
  await users.invalidate(id);
  assert.is((await users.get(id)).value?.name, 'After');
  assert.is((await other.get(id)).value?.name, 'After', 'another loader on the same Redis sees it too');
});

test('1,000 concurrent reads of a cold key cause exactly one database query', async () => {
  const metrics = createMetrics();
  const users = createUserProfileLoader(deps(metrics));
  const id = await insertUser(db, 'Popular');
  counter.reset();
  const results = await Promise.all(Array.from({ length: 1000 }, () => users.get(id)));
  assert.is(counter.countFrom('users'), 1);
  assert.ok(results.every((r) => r.value?.name === 'Popular' && !r.stale));
  assert.is(await counterValue(metrics.cache.coalesced, { loader: 'user', scope: 'process' }), 999);
});

test('1,000 concurrent reads of an expired hot key cause exactly one database query', async () => {
  let shift = 0;
  const users = createUserProfileLoader(deps(createMetrics(), { now: () => Date.now() + shift }));
  const id = await insertUser(db, 'Hot');
  await users.get(id);
  shift = ctx.config.cache.userTtlSeconds * 1100 + 1000; // past the fresh TTL, within the hard staleness
  counter.reset();
  const results = await Promise.all(Array.from({ length: 1000 }, () => users.get(id)));
  assert.is(counter.countFrom('users'), 1);
  assert.ok(results.every((r) => r.value?.name === 'Hot' && !r.stale));
});

test('getMany reads the cached ids and loads the rest in one query; missing ids are absent', async () => {
  const users = createUserProfileLoader(deps());
  const ids = await Promise.all(['U1', 'U2', 'U3', 'U4', 'U5'].map((n) => insertUser(db, n)));
  await users.get(ids[0]!);
  await users.get(ids[1]!);
  const missing = randomUUID();
  counter.reset();
  const found = await users.getMany([...ids, missing, ids[2]!, 'not-a-uuid']);
  assert.is(counter.countFrom('users'), 1, 'one batched query for the three uncached ids and the missing one');
  assert.equal([...found.keys()].sort(), [...ids].sort());
  assert.equal(ids.map((id) => found.get(id)!.value!.name), ['U1', 'U2', 'U3', 'U4', 'U5']);
  counter.reset();
  const again = await users.getMany([...ids, missing]);
  assert.is(counter.countFrom('users'), 0, 'all of them, including the not-found one, are cached now');
  assert.is(again.size, 5);
});

test('an id that is not a uuid is not found without a query', async () => {
  const users = createUserProfileLoader(deps());
  counter.reset();
  assert.equal(await users.get("1' or '1'='1"), { value: null, stale: false });
  assert.is(counter.count, 0);
});

test('entry TTLs carry ±10% jitter on top of the hard staleness', async () => {
  const redis = ctx.redis();
  const ttlSeconds = 100;
  const hardStale = ctx.config.cache.hardStaleSeconds * 1000;
  const ttls: number[] = [];
  for (const r of [0, 1]) {
    const loader = createCachedLoader<UserView>({
      ...ctx.config.cache,
      name: `jitter${r}`,
      ttlSeconds,
      negativeTtlSeconds: 5,
      load: (ids) => loadUserProfiles(db, ids),
      redis,
      scripts: createScripts(redis),
      keys: keys(),
      metrics: createMetrics(),
      random: () => r,
    });
    const id = await insertUser(db, `J${r}`);
    await loader.get(id);
    ttls.push(await redis.pttl(keys().cache(`jitter${r}`, id)));
  }
  assert.ok(ttls[0]! <= 90_000 + hardStale && ttls[0]! > 89_000 + hardStale, `low jitter: ${ttls[0]}`);
  assert.ok(ttls[1]! <= 110_000 + hardStale && ttls[1]! > 109_000 + hardStale, `high jitter: ${ttls[1]}`);
});

test('a slow read that overlaps an invalidation does not write its old value back', async () => {
  const redis = ctx.redis();
  let hold = true;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let queried!: () => void;
  const loadedOld = new Promise<void>((resolve) => (queried = resolve));
  const slow = createCachedLoader<UserView>({
    ...ctx.config.cache,
    name: 'user',
    ttlSeconds: 300,
    negativeTtlSeconds: 30,
    redis,
    scripts: createScripts(redis),
    keys: keys(),
    metrics: createMetrics(),
    load: async (ids) => {
      const rows = await loadUserProfiles(db, ids);
      if (hold) {
        queried();
        await gate; // the read has its (old) row and stalls before storing it
      }
      return rows;
    },
  });
  const writer = createUserProfileLoader(deps());
  const id = await insertUser(db, 'Old name');

  const slowRead = slow.get(id);
  await loadedOld;
  await db.updateTable('users').set({ display_name: 'New name' }).where('id', '=', id).execute();
  await writer.invalidate(id);
  release();
  assert.is((await slowRead).value?.name, 'Old name', 'the slow read itself began before the write');
  assert.is(await redis.get(keys().cache('user', id)), null, 'the old value was not stored after the invalidation');
  hold = false;
  assert.is((await slow.get(id)).value?.name, 'New name');
  assert.is((await writer.get(id)).value?.name, 'New name');
});

test('rooms are cached as room state with ISO dates', async () => {
  const rooms = createRoomLoader(deps());
  const host = await insertUser(db, 'Host');
  const id = await insertRoom(db, host, { pin: '424242', title: 'Friday quiz' });
  counter.reset();
  const first = await rooms.get(id);
  const second = await rooms.get(id);
  assert.is(counter.countFrom('rooms'), 1);
  assert.equal(second, first);
  const room = first.value!;
  assert.equal({ ...room, createdAt: typeof room.createdAt }, {
    id,
    pin: '424242',
    title: 'Friday quiz',
    hostId: host,
    status: 'lobby',
    locked: false,
    approval: false,
    maxMembers: 50,
    createdAt: 'string',
    endedAt: null,
  });
  assert.ok(!Number.isNaN(Date.parse(room.createdAt)));
  await db.updateTable('rooms').set({ status: 'ended', ended_at: new Date() }).where('id', '=', id).execute();
  await rooms.invalidate(id);
  const ended = (await rooms.get(id)).value!;
  assert.is(ended.status, 'ended');
  assert.ok(ended.endedAt && !Number.isNaN(Date.parse(ended.endedAt)));
});

test('the app reads through its own user and room loaders and counts into its own registry', async () => {
  const app = createApp(ctx.config);
  try {
    await app.start();
    const host = await insertUser(db, 'App host');
    const room = await insertRoom(db, host);
    assert.is((await app.loaders.users.get(host)).value?.name, 'App host');
    assert.is((await app.loaders.rooms.get(room)).value?.hostId, host);
    const text = await app.metrics.registry.metrics();
    assert.match(text, 'pinroom_cache_misses_total{loader="user"} 1');
    assert.match(text, 'pinroom_cache_misses_total{loader="room"} 1');
  } finally {
    await app.stop();
  }
});

test.run();
