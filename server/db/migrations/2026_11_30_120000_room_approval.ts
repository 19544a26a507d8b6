/**
 * Approval mode (a waiting room): `rooms.approval`. While it is on, a new
 * joiner waits (in Redis, `keys.roomWaiting`) until the host admits them;
 * admission records the membership with `room_join` like any join.
 */
import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code from a migration.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table rooms add column approval boolean not null default false`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table rooms drop column approval`.execute(db);
}
