/**
 * The feed archive: what a row needs so that a gap in a room's Redis stream can
 * be proven covered, and so that history can be read in stream order.
 * - `epoch`: the stream life the entry belongs to (the room's feed epoch).
 * - `prev_id`: the id of the entry before it in the stream ('0-0' for the first);
 *   a run of rows whose `prev_id` links form an unbroken chain is provably complete.
 * - `actor_name`: the actor's display name as it was when published.
 * - `id_ms`, `id_seq`: the two numbers of the stream id, for ordering and ranges
 *   (stream ids do not sort as text).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('activity')
    .addColumn('epoch', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('prev_id', 'text')
    .addColumn('actor_name', 'text')
    .addColumn('id_ms', 'bigint', (c) => c.generatedAlwaysAs(sql`split_part(entry_id, '-', 1)::bigint`).stored())
    .addColumn('id_seq', 'bigint', (c) => c.generatedAlwaysAs(sql`split_part(entry_id, '-', 2)::bigint`).stored())
    .execute();
  await sql`alter table activity add constraint activity_entry_id_format check (entry_id ~ '^[0-9]{1,20}-[0-9]{1,20}$')`.execute(db);
  // History (newest first, any epoch) and gap filling (one epoch, an id range).
  await db.schema.createIndex('activity_room_order_idx').on('activity').columns(['room_id', 'id_ms', 'id_seq']).execute();
  await db.schema.createIndex('activity_room_epoch_order_idx').on('activity').columns(['room_id', 'epoch', 'id_ms', 'id_seq']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('activity_room_epoch_order_idx').execute();
  await db.schema.dropIndex('activity_room_order_idx').execute();
  await sql`alter table activity drop constraint activity_entry_id_format`.execute(db);
  await db.schema
    .alterTable('activity')
    .dropColumn('id_seq')
    .dropColumn('id_ms')
    .dropColumn('actor_name')
    .dropColumn('prev_id')
    .dropColumn('epoch')
    .execute();
}
