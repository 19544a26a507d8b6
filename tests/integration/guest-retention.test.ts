/**
 * Guest retention against a real PostgreSQL: guests past GUEST_RETENTION_DAYS
 * are removed in batches, while what must stay stays (recent guests,
 * registered users, members of rooms still open, the archive's copies of
 * display names); nodes sweeping at once remove each guest once.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Db } from '../../server/db/database.ts';
import { createLogger } from '../../server/logger.ts';
import { createGuestRetention } from '../../server/users/guest-retention.ts';
import { createTestContext, type TestContext } from '../support/context.ts';

const test = suite('users/guest-retention');
const DAY = 86_400_000;
const logger = createLogger({ log: { level: 'silent' }, env: 'test' });
let ctx: TestContext;
let db: Db;

const retention = (days = 30) => createGuestRetention({ db, config: { guestRetentionDays: days, guestSweepIntervalSeconds: 3600 }, logger });

async function user(kind: 'guest' | 'registered', ageDays: number, name: string): Promise<string> {
  const row = await db
    .insertInto('users')
    .values({
      display_name: name,
      kind,
      username: kind === 'registered' ? `${name.toLowerCase()}_${Math.random().toString(36).slice(2, 8)}` : null,
      password_hash: kind === 'registered' ? 'scrypt$15$8$3$x$y' : null,
      created_at: new Date(Date.now() - ageDays * DAY),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

async function room(hostId: string, status: 'live' | 'ended'): Promise<string> {
  const row = await db
    .insertInto('rooms')
    .values({ pin: String(Math.floor(Math.random() * 1e9)), title: 'Room', host_id: hostId, max_members: 30, status, ended_at: status === 'ended' ? new Date() : null })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

const exists = async (id: string) => (await db.selectFrom('users').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;

test.before(async () => {
  ctx = createTestContext();
  await ctx.migrate();
  db = ctx.db();
});
test.after(async () => {
  await ctx.cleanup();
});

test('guests past GUEST_RETENTION_DAYS are removed; recent guests, registered users, members of open rooms and archived names stay', async () => {
  const oldGuest = await user('guest', 31, 'Old guest');
  const recentGuest = await user('guest', 29, 'Recent guest');
  const oldRegistered = await user('registered', 400, 'Veteran');
  const inOpenRoom = await user('guest', 45, 'Still in class');
  const inEndedRoom = await user('guest', 45, 'Class is over');
  const open = await room(oldRegistered, 'live');
  const ended = await room(oldRegistered, 'ended');
  await db
    .insertInto('room_members')
    .values([
      { room_id: open, user_id: inOpenRoom, role: 'member', joined_at: new Date() },
      { room_id: ended, user_id: inEndedRoom, role: 'member', joined_at: new Date() },
    ])
    .execute();
  await db
    .insertInto('activity')
    .values({ room_id: ended, entry_id: '1-0', type: 'chat.message', actor_id: oldGuest, actor_name: 'Old guest', payload: JSON.stringify({ text: 'hello' }), created_at: new Date(), epoch: 'e1', prev_id: '0-0' })
    .execute();

  assert.is(await retention(30).sweep(), 2);
  assert.not.ok(await exists(oldGuest), 'an old guest is removed');
  assert.not.ok(await exists(inEndedRoom), 'with its memberships of ended rooms');
  assert.is((await db.selectFrom('room_members').select('user_id').where('room_id', '=', ended).execute()).length, 0);
  assert.ok(await exists(recentGuest), 'a guest within its retention stays');
  assert.ok(await exists(oldRegistered), 'registered users stay');
  assert.ok(await exists(inOpenRoom), 'a member of a room still open stays (removed once it ends)');
  const archived = await db.selectFrom('activity').select(['actor_id', 'actor_name', 'payload']).where('room_id', '=', ended).executeTakeFirstOrThrow();
  assert.equal({ ...archived }, { actor_id: oldGuest, actor_name: 'Old guest', payload: { text: 'hello' } }, 'the archive keeps the entry and the name it showed');

  await db.updateTable('rooms').set({ status: 'ended', ended_at: new Date() }).where('id', '=', open).execute();
  assert.is(await retention(30).sweep(), 1);
  assert.not.ok(await exists(inOpenRoom));
});

test('several nodes sweeping at once remove every expired guest exactly once, in batches', async () => {
  const ids = await Promise.all(Array.from({ length: 1200 }, (_, i) => user('guest', 60, `Batch ${i}`)));
  const removed = await Promise.all([retention().sweep(), retention().sweep(), retention().sweep()]);
  assert.is(removed.reduce((a, b) => a + b, 0), ids.length, `removed ${removed.join(' + ')}`);
  const left = await db.selectFrom('users').select('id').where('kind', '=', 'guest').where('created_at', '<', new Date(Date.now() - 30 * DAY)).execute();
  assert.is(left.length, 0);
});

test.run();
