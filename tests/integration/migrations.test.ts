import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from '../support/assert.ts';
import { sql } from 'kysely';
import { Migrator } from 'kysely';
import { ensureDatabase } from '../../server/db/database.ts';
import { migrations } from '../../server/db/migrations/index.ts';
import { migrateToLatest } from '../../server/db/migrate.ts';
import { createTestContext, type TestContext } from '../support/context.ts';

const test = suite('db/migrations');
let ctx: TestContext;

test.before(async () => {
  ctx = createTestContext();
  await ensureDatabase(ctx.config);
});
test.after(async () => {
  await ctx.cleanup();
});

test('migrations apply to a fresh database', async () => {
  const results = await migrateToLatest(ctx.db());
  assert.ok(results.length >= 1);
  assert.ok(results.every((r) => r.status === 'Success'));
  const tables = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = 'public'`.execute(ctx.db());
  const names = tables.rows.map((r) => r.table_name);
  for (const name of ['users', 'rooms', 'room_members', 'activity']) assert.ok(names.includes(name), name);
});

test('applying them again is a no-op', async () => {
  const results = await migrateToLatest(ctx.db());
  assert.is(results.length, 0);
});

test('a PIN is unique among rooms that have not ended, and free again once they end', async () => {
  const db = ctx.db();
  const host = await db.insertInto('users').values({ display_name: 'Host', kind: 'guest' }).returning('id').executeTakeFirstOrThrow();
  const room = { pin: '424242', title: 't', host_id: host.id, max_members: 10 };
  const first = await db.insertInto('rooms').values(room).returning('id').executeTakeFirstOrThrow();
  await rejects(() => db.insertInto('rooms').values(room).execute());
  await db.updateTable('rooms').set({ status: 'ended', ended_at: new Date() }).where('id', '=', first.id).execute();
  await db.insertInto('rooms').values(room).execute();
});

test('usernames are unique case-insensitively, and a registered user needs a password hash', async () => {
  const db = ctx.db();
  await db.insertInto('users').values({ username: 'Ada', display_name: 'Ada', password_hash: 'x', kind: 'registered' }).execute();
  await rejects(() => db.insertInto('users').values({ username: 'ada', display_name: 'a', password_hash: 'y', kind: 'registered' }).execute());
  await rejects(() => db.insertInto('users').values({ username: 'bob', display_name: 'b', kind: 'registered' }).execute());
});

test('an activity entry is stored once per room and stream id, in the partition of its day', async () => {
  const db = ctx.db();
  const host = await db.insertInto('users').values({ display_name: 'H', kind: 'guest' }).returning('id').executeTakeFirstOrThrow();
  const room = await db.insertInto('rooms').values({ pin: '111111', title: 't', host_id: host.id, max_members: 5 }).returning('id').executeTakeFirstOrThrow();
  const entry = { room_id: room.id, entry_id: '1-0', type: 'chat.message', payload: JSON.stringify({ text: 'hi' }), created_at: new Date() };
  await db.insertInto('activity').values(entry).execute();
  const again = await db.insertInto('activity').values(entry).onConflict((oc) => oc.columns(['room_id', 'entry_id', 'created_at']).doNothing()).execute();
  assert.is(Number(again[0]?.numInsertedOrUpdatedRows ?? 0), 0);
  const where = await sql<{ partition: string }>`select tableoid::regclass::text as partition from activity where room_id = ${room.id}`.execute(db);
  assert.equal(where.rows.map((r) => r.partition), [`activity_p${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`]);
});

test('several nodes creating the same new database at once all succeed', async () => {
  const other = createTestContext();
  try {
    await Promise.all(Array.from({ length: 8 }, () => ensureDatabase(other.config)));
    await Promise.all(Array.from({ length: 4 }, () => migrateToLatest(other.db())));
  } finally {
    await other.cleanup();
  }
});

test('archive rows written before partitioning move into day partitions, oldest day included', async () => {
  const other = createTestContext();
  await ensureDatabase(other.config);
  try {
    const db = other.db();
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
    const before = await migrator.migrateTo('2026_11_22_060000_feed_archive');
    assert.not.ok(before.error);
    const host = await db.insertInto('users').values({ display_name: 'H', kind: 'guest' }).returning('id').executeTakeFirstOrThrow();
    const room = await db.insertInto('rooms').values({ pin: '222222', title: 't', host_id: host.id, max_members: 5 }).returning('id').executeTakeFirstOrThrow();
    const old = new Date(Date.now() - 9 * 86_400_000);
    await sql`insert into activity (room_id, entry_id, type, payload, created_at, epoch, prev_id) values
      (${room.id}, ${`${old.getTime()}-0`}, 'chat.message', '{"text":"old"}', ${old}, 'e', '0-0'),
      (${room.id}, ${`${Date.now()}-0`}, 'chat.message', '{"text":"new"}', now(), 'e', ${`${old.getTime()}-0`})`.execute(db);
    const after = await migrator.migrateToLatest();
    assert.not.ok(after.error);
    const rows = await sql<{ text: string; partition: string }>`select payload->>'text' as text, tableoid::regclass::text as partition from activity order by id_ms`.execute(db);
    const day = (d: Date) => `activity_p${d.toISOString().slice(0, 10).replace(/-/g, '')}`;
    assert.equal(rows.rows, [{ text: 'old', partition: day(old) }, { text: 'new', partition: day(new Date()) }]);
  } finally {
    await other.cleanup();
  }
});

test.run();
