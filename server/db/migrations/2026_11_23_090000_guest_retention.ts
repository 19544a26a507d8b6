/**
 * Guest retention: the periodic job that removes guest accounts past
 * `GUEST_RETENTION_DAYS` finds them by creation time; a partial index keeps
 * that a range scan over guests only.
 */
import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code from a migration.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index users_guest_created_at_idx on users (created_at) where kind = 'guest'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('users_guest_created_at_idx').execute();
}
