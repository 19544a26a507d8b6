/**
 * The feed archive, partitioned by day (`created_at`, UTC) with PostgreSQL's
 * native declarative partitioning, so that old days are dropped whole
 * (`FEED_ARCHIVE_RETENTION_DAYS`) instead of deleted row by row, and a busy
 * day does not slow every later query.
 * - Partitions are named `activity_pYYYYMMDD` and hold [day, day + 1). The
 *   archive worker creates them ahead and drops those past retention; this
 *   migration creates the ones the existing rows need and the next days.
 * - The unique key must contain the partition key: `(room_id, entry_id,
 *   created_at)`. `created_at` is the entry id's milliseconds, so an entry
 *   has one `created_at` and the key is still one row per entry.
 * - The surrogate `id` column (never read) is dropped.
 * Existing rows are copied over.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table activity rename to activity_unpartitioned`.execute(db);
  await sql`alter table activity_unpartitioned rename constraint activity_pkey to activity_unpartitioned_pkey`.execute(db);
  await sql`
    create table activity (
      room_id uuid not null references rooms(id) on delete cascade,
      entry_id text not null constraint activity_entry_id_format check (entry_id ~ '^[0-9]{1,20}-[0-9]{1,20}$'),
      epoch text not null default '',
      prev_id text,
      type text not null,
      actor_id uuid,
      actor_name text,
      payload jsonb not null default '{}'::jsonb,
      created_at timestamptz not null,
      id_ms bigint generated always as (split_part(entry_id, '-', 1)::bigint) stored,
      id_seq bigint generated always as (split_part(entry_id, '-', 2)::bigint) stored,
      constraint activity_pkey primary key (room_id, entry_id, created_at)
    ) partition by range (created_at)`.execute(db);
  // One partition per UTC day, from the oldest row's day (or yesterday) to three days ahead.
  await sql`
    do $$
    declare
      day date := least(coalesce((select min(created_at at time zone 'UTC')::date from activity_unpartitioned), current_date), (now() at time zone 'UTC')::date - 1);
      last date := (now() at time zone 'UTC')::date + 3;
    begin
      while day <= last loop
        execute format('create table if not exists %I partition of activity for values from (%L) to (%L)',
          'activity_p' || to_char(day, 'YYYYMMDD'), day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00');
        day := day + 1;
      end loop;
    end $$`.execute(db);
  await sql`
    insert into activity (room_id, entry_id, epoch, prev_id, type, actor_id, actor_name, payload, created_at)
    select room_id, entry_id, epoch, prev_id, type, actor_id, actor_name, payload, created_at from activity_unpartitioned`.execute(db);
  await sql`drop table activity_unpartitioned`.execute(db);
  // History (newest first, any epoch) and gap filling (one epoch, an id range); created on every partition.
  await sql`create index activity_room_order_idx on activity (room_id, id_ms, id_seq)`.execute(db);
  await sql`create index activity_room_epoch_order_idx on activity (room_id, epoch, id_ms, id_seq)`.execute(db);
  // The archive sweep reads open rooms and rooms ended recently.
  await sql`create index rooms_ended_at_idx on rooms (ended_at)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index rooms_ended_at_idx`.execute(db);
  await sql`alter table activity rename to activity_partitioned`.execute(db);
  await sql`alter table activity_partitioned rename constraint activity_pkey to activity_partitioned_pkey`.execute(db);
  await sql`
    create table activity (
      id bigserial primary key,
      room_id uuid not null references rooms(id) on delete cascade,
      entry_id text not null,
      type text not null,
      actor_id uuid,
      payload jsonb not null default '{}'::jsonb,
      created_at timestamptz not null,
      epoch text not null default '',
      prev_id text,
      actor_name text,
      id_ms bigint generated always as (split_part(entry_id, '-', 1)::bigint) stored,
      id_seq bigint generated always as (split_part(entry_id, '-', 2)::bigint) stored,
      constraint activity_room_entry_key unique (room_id, entry_id),
      constraint activity_entry_id_format check (entry_id ~ '^[0-9]{1,20}-[0-9]{1,20}$')
    )`.execute(db);
  await sql`
    insert into activity (room_id, entry_id, epoch, prev_id, type, actor_id, actor_name, payload, created_at)
    select room_id, entry_id, epoch, prev_id, type, actor_id, actor_name, payload, created_at from activity_partitioned`.execute(db);
  await sql`drop table activity_partitioned`.execute(db);
  await sql`create index activity_room_order_idx on activity (room_id, id_ms, id_seq)`.execute(db);
  await sql`create index activity_room_epoch_order_idx on activity (room_id, epoch, id_ms, id_seq)`.execute(db);
}
