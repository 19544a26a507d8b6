/**
 * The PostgreSQL archive of room feeds (`activity`, partitioned by UTC day on
 * `created_at`): batched idempotent inserts for the archive worker, the
 * partitions it keeps (created ahead, dropped past retention), and the reads
 * the feed needs (a gap's entries in stream order with proof that they chain,
 * and history newest first).
 *
 * `created_at` is the entry id's milliseconds, so every read by id range also
 * bounds `created_at` and PostgreSQL scans only the partitions concerned.
 */
import { sql } from 'kysely';
import type { FeedEntry } from '../../shared/schemas.ts';
import type { Db } from '../db/database.ts';
import type { ArchiveRecord, Delivery } from './feed-store.ts';
import { endsOf, entryTail } from './feed-store.ts';

/** An archived entry as a replay delivers it. */
export interface ArchivedDelivery {
  delivery: Delivery;
  prev: string | null;
}

/** An archived entry as history shows it. */
export interface ArchivedEntry {
  entry: FeedEntry;
  prev: string | null;
}

/** Whether archived rows form an unbroken chain between two ids, and how many there are. */
export interface ArchiveChain {
  linked: boolean;
  count: number;
}

interface Row {
  room_id: string;
  entry_id: string;
  prev_id: string | null;
  type: string;
  actor_id: string | null;
  actor_name: string | null;
  payload: unknown;
  created_at: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const COLUMNS = ['room_id', 'entry_id', 'prev_id', 'type', 'actor_id', 'actor_name', 'payload', 'created_at'] as const;
const DAY_MS = 86_400_000;

const split = (id: string) => id.split('-') as [string, string];
const payloadOf = (row: Row) => (row.payload && typeof row.payload === 'object' ? row.payload : {}) as Record<string, unknown>;
/** The partition holding UTC day `day` (ms at its midnight). */
export const partitionName = (day: number) => `activity_p${new Date(day).toISOString().slice(0, 10).replace(/-/g, '')}`;
/** Midnight (UTC) of the day holding `ms`. */
export const dayOf = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;

function toEntry(row: Row): ArchivedEntry {
  return {
    entry: {
      roomId: row.room_id,
      id: row.entry_id,
      type: row.type,
      actor: row.actor_id ? { id: row.actor_id, name: row.actor_name ?? '' } : null,
      payload: payloadOf(row),
      ts: row.created_at.getTime(),
    },
    prev: row.prev_id,
  };
}

function toDelivery(row: Row): ArchivedDelivery {
  const payload = payloadOf(row);
  const tail = entryTail(row.room_id, undefined, row.type, row.actor_id ?? '', row.actor_name ?? '', JSON.stringify(payload));
  return {
    delivery: {
      id: row.entry_id,
      prev: row.prev_id ?? '',
      json: `{"id":"${row.entry_id}","ts":${row.created_at.getTime()}${tail}`,
      ends: endsOf(row.type, row.actor_id ?? '', () => payload),
    },
    prev: row.prev_id,
  };
}

/** SQLSTATE classes of errors that belong to a row (its data), not to the connection or the server. */
export function isRowError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

export type ActivityRepository = ReturnType<typeof createActivityRepository>;

export function createActivityRepository(db: Db) {
  /** Days whose partition is known to exist (created here or seen). */
  const known = new Set<number>();

  const range = (after: string, before: string | undefined) => {
    const [am, as] = split(after);
    const bounds = [sql<boolean>`(id_ms, id_seq) > (${am}::bigint, ${as}::bigint)`, sql<boolean>`created_at >= to_timestamp(${am}::bigint / 1000.0)`];
    if (before) {
      const [bm, bs] = split(before);
      bounds.push(sql<boolean>`(id_ms, id_seq) < (${bm}::bigint, ${bs}::bigint)`, sql<boolean>`created_at <= to_timestamp(${bm}::bigint / 1000.0)`);
    }
    return bounds;
  };

  return {
    /**
     * Insert records in one statement; rows already there (same room, entry id
     * and time) are left alone, so a batch may be inserted any number of times.
     * Entries of rooms PostgreSQL does not know, and entries older than
     * `notBefore` (past retention), are skipped. Returns rows inserted.
     */
    async insertBatch(records: readonly ArchiveRecord[], notBefore = 0): Promise<number> {
      const valid = records.filter((r) => UUID.test(r.roomId) && r.ts >= notBefore);
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
        on conflict (room_id, entry_id, created_at) do nothing
      `.execute(db);
      return Number(result.numAffectedRows ?? 0);
    },

    /** Create the partitions of the days holding `times` (ms) when this process has not seen them yet. */
    async ensurePartitions(times: readonly number[]): Promise<void> {
      for (const day of new Set(times.map(dayOf))) {
        if (known.has(day)) continue;
        const name = partitionName(day);
        const from = new Date(day).toISOString();
        const to = new Date(day + DAY_MS).toISOString();
        try {
          await sql`create table if not exists ${sql.id(name)} partition of activity for values from (${sql.lit(from)}) to (${sql.lit(to)})`.execute(db);
        } catch (err) {
          // Another node created it at the same moment.
          const code = (err as { code?: string }).code;
          if (code !== '42P07' && code !== '23505') throw err;
        }
        known.add(day);
      }
    },

    /** Drop the partitions whose whole day is before `cutoff` (ms). Returns their names. */
    async dropPartitionsBefore(cutoff: number): Promise<string[]> {
      const { rows } = await sql<{ name: string }>`
        select c.relname as name from pg_inherits i
        join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
        where p.relname = 'activity' and p.relnamespace = c.relnamespace`.execute(db);
      const dropped: string[] = [];
      for (const { name } of rows) {
        const match = /^activity_p(\d{4})(\d{2})(\d{2})$/.exec(name);
        if (!match) continue;
        const day = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
        if (day + DAY_MS > cutoff) continue;
        await sql`drop table if exists ${sql.id(name)}`.execute(db);
        known.delete(day);
        dropped.push(name);
      }
      return dropped;
    },

    /** Entries of one epoch strictly between `after` and `before`, oldest first, at most `limit`. */
    async between(roomId: string, epoch: string, after: string, before: string, limit: number): Promise<ArchivedDelivery[]> {
      let query = db.selectFrom('activity').select(COLUMNS).where('room_id', '=', roomId).where('epoch', '=', epoch);
      for (const bound of range(after, before)) query = query.where(bound);
      const rows = await query.orderBy('id_ms').orderBy('id_seq').limit(limit).execute();
      return rows.map((r) => toDelivery(r as Row));
    },

    /**
     * Whether the rows of one epoch strictly between `after` and `before` form
     * an unbroken `prev` chain starting at `after` and ending at `linkTo`, and
     * how many there are; at most `limit` + 1 rows are looked at.
     */
    async chain(roomId: string, epoch: string, after: string, before: string, linkTo: string, limit: number): Promise<ArchiveChain> {
      const [am, as] = split(after);
      const [bm, bs] = split(before);
      const { rows } = await sql<{ count: string; breaks: string; last: string | null }>`
        select count(*) as count,
               count(*) filter (where prev_id is distinct from expected) as breaks,
               (array_agg(entry_id order by id_ms desc, id_seq desc))[1] as last
        from (
          select entry_id, prev_id, id_ms, id_seq, lag(entry_id, 1, ${after}) over (order by id_ms, id_seq) as expected
          from (
            select entry_id, prev_id, id_ms, id_seq from activity
            where room_id = ${roomId} and epoch = ${epoch}
              and (id_ms, id_seq) > (${am}::bigint, ${as}::bigint) and (id_ms, id_seq) < (${bm}::bigint, ${bs}::bigint)
              and created_at >= to_timestamp(${am}::bigint / 1000.0) and created_at <= to_timestamp(${bm}::bigint / 1000.0)
            order by id_ms, id_seq
            limit ${limit + 1}
          ) bounded
        ) chained`.execute(db);
      const row = rows[0]!;
      const count = Number(row.count);
      return { count, linked: Number(row.breaks) === 0 && (count === 0 ? after === linkTo : row.last === linkTo) };
    },

    /** Entries of a room (any epoch) older than `before` (absent: newest), newest first, at most `limit`. */
    async before(roomId: string, before: string | undefined, limit: number): Promise<ArchivedEntry[]> {
      let query = db.selectFrom('activity').select(COLUMNS).where('room_id', '=', roomId);
      if (before) {
        const [bm, bs] = split(before);
        query = query.where(sql<boolean>`(id_ms, id_seq) < (${bm}::bigint, ${bs}::bigint)`).where(sql<boolean>`created_at <= to_timestamp(${bm}::bigint / 1000.0)`);
      }
      const rows = await query.orderBy('id_ms', 'desc').orderBy('id_seq', 'desc').limit(limit).execute();
      return rows.map((r) => toEntry(r as Row));
    },

    /** The oldest entry the archive keeps for a room (any epoch), if any. */
    async oldest(roomId: string): Promise<ArchivedEntry | null> {
      const row = await db.selectFrom('activity').select(COLUMNS).where('room_id', '=', roomId).orderBy('id_ms').orderBy('id_seq').limit(1).executeTakeFirst();
      return row ? toEntry(row as Row) : null;
    },

    /** Rows archived for a room (tests and operators). */
    async count(roomId: string): Promise<number> {
      const row = await db.selectFrom('activity').select(sql<string>`count(*)`.as('n')).where('room_id', '=', roomId).executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}
