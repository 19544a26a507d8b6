/**
 * The PostgreSQL archive of room feeds (`activity`): batched idempotent inserts
 * for the archive worker, and the two reads the feed needs (a gap's entries in
 * stream order, and history newest first).
 */
import { sql } from 'kysely';
import type { FeedEntry } from '../../shared/schemas.ts';
import type { Db } from '../db/database.ts';
import type { ArchiveRecord } from './feed-store.ts';

export interface ArchivedEntry {
  entry: FeedEntry;
  epoch: string;
  prev: string | null;
}

interface Row {
  room_id: string;
  entry_id: string;
  epoch: string;
  prev_id: string | null;
  type: string;
  actor_id: string | null;
  actor_name: string | null;
  payload: unknown;
  created_at: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const split = (id: string) => id.split('-') as [string, string];

function toArchived(row: Row): ArchivedEntry {
  return {
    entry: {
      roomId: row.room_id,
      id: row.entry_id,
      type: row.type,
      actor: row.actor_id ? { id: row.actor_id, name: row.actor_name ?? '' } : null,
      payload: (row.payload && typeof row.payload === 'object' ? row.payload : {}) as Record<string, unknown>,
      ts: row.created_at.getTime(),
    },
    epoch: row.epoch,
    prev: row.prev_id,
  };
}

export type ActivityRepository = ReturnType<typeof createActivityRepository>;

export function createActivityRepository(db: Db) {
  return {
    /**
     * Insert a batch in one statement; rows already there (same room and entry
     * id) are left alone, so a batch may be inserted any number of times.
     * Entries of rooms PostgreSQL does not know are skipped. Returns rows inserted.
     */
    async insertBatch(records: readonly ArchiveRecord[]): Promise<number> {
      const valid = records.filter((r) => UUID.test(r.roomId));
      if (valid.length === 0) return 0;
      const result = await sql`
        insert into activity (room_id, entry_id, epoch, prev_id, type, actor_id, actor_name, payload, created_at)
        select u.room_id, u.entry_id, u.epoch, u.prev_id, u.type, u.actor_id, u.actor_name, u.payload::jsonb, to_timestamp(u.ts / 1000.0)
        from unnest(
          ${valid.map((r) => r.roomId)}::uuid[], ${valid.map((r) => r.entryId)}::text[], ${valid.map((r) => r.epoch)}::text[],
          ${valid.map((r) => r.prev)}::text[], ${valid.map((r) => r.type)}::text[],
          ${valid.map((r) => (r.actor && UUID.test(r.actor.id) ? r.actor.id : null))}::uuid[],
          ${valid.map((r) => (r.actor && UUID.test(r.actor.id) ? r.actor.name : null))}::text[],
          ${valid.map((r) => r.payload)}::text[], ${valid.map((r) => r.ts)}::bigint[]
        ) as u(room_id, entry_id, epoch, prev_id, type, actor_id, actor_name, payload, ts)
        where exists (select 1 from rooms where rooms.id = u.room_id)
        on conflict (room_id, entry_id) do nothing
      `.execute(db);
      return Number(result.numAffectedRows ?? 0);
    },

    /** Entries of one epoch strictly between `after` and `before` (absent: no upper bound), oldest first, at most `limit`. */
    async between(roomId: string, epoch: string, after: string, before: string | undefined, limit: number): Promise<ArchivedEntry[]> {
      const [am, as] = split(after);
      let query = db
        .selectFrom('activity')
        .select(['room_id', 'entry_id', 'epoch', 'prev_id', 'type', 'actor_id', 'actor_name', 'payload', 'created_at'])
        .where('room_id', '=', roomId)
        .where('epoch', '=', epoch)
        .where(sql<boolean>`(id_ms, id_seq) > (${am}::bigint, ${as}::bigint)`);
      if (before) {
        const [bm, bs] = split(before);
        query = query.where(sql<boolean>`(id_ms, id_seq) < (${bm}::bigint, ${bs}::bigint)`);
      }
      const rows = await query.orderBy('id_ms').orderBy('id_seq').limit(limit).execute();
      return rows.map((r) => toArchived(r as Row));
    },

    /** Entries of a room (any epoch) older than `before` (absent: newest), newest first, at most `limit`. */
    async before(roomId: string, before: string | undefined, limit: number): Promise<ArchivedEntry[]> {
      let query = db
        .selectFrom('activity')
        .select(['room_id', 'entry_id', 'epoch', 'prev_id', 'type', 'actor_id', 'actor_name', 'payload', 'created_at'])
        .where('room_id', '=', roomId);
      if (before) {
        const [bm, bs] = split(before);
        query = query.where(sql<boolean>`(id_ms, id_seq) < (${bm}::bigint, ${bs}::bigint)`);
      }
      const rows = await query.orderBy('id_ms', 'desc').orderBy('id_seq', 'desc').limit(limit).execute();
      return rows.map((r) => toArchived(r as Row));
    },

    /** Rows archived for a room (tests and operators). */
    async count(roomId: string): Promise<number> {
      const row = await db.selectFrom('activity').select(sql<string>`count(*)`.as('n')).where('room_id', '=', roomId).executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}
