/**
 * Rooms and memberships in PostgreSQL: the system of record. Reads of room
 * state go through the cache-aside loader; this module holds the writes and
 * the decisions that must see committed state under a row lock (join, kick).
 */
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { MemberRole } from '../../shared/schemas.ts';
import { createCoalescer } from './coalesce.ts';

export type RoomRepository = ReturnType<typeof createRoomRepository>;

export interface NewRoomInput {
  id: string;
  pin: string;
  title: string;
  hostId: string;
  /** The name the host goes by in the room. */
  hostName: string;
  maxMembers: number;
  approval: boolean;
}

/** A room as `room_join` reads it (under its row lock when admitting). */
export interface JoinedRoom {
  id: string;
  pin: string;
  title: string;
  hostId: string;
  status: 'lobby' | 'live' | 'ended';
  locked: boolean;
  maxMembers: number;
  createdAt: Date;
}

/**
 * What `join` decided. `joined`: recorded (a new or returning member);
 * `rejoined`: already an active member, nothing written; `not_member`: only
 * from a probe (`admit` false), nothing written; `nickname_taken`: another
 * active member of the room goes by that name (case-insensitively).
 * `name` is the name the member goes by in the room.
 */
export type JoinDecision =
  | { outcome: 'joined' | 'rejoined'; room: JoinedRoom; role: MemberRole; memberCount: number; name: string }
  | { outcome: 'not_member'; room: JoinedRoom; memberCount: number }
  | { outcome: 'not_found' }
  | { outcome: 'banned'; bannedUntil: Date }
  | { outcome: 'locked' }
  | { outcome: 'full'; maxMembers: number }
  | { outcome: 'nickname_taken' };

export interface MemberRecord {
  userId: string;
  name: string;
  role: MemberRole;
  /** Join order; the cursor of member pages. */
  seq: string;
}

interface JoinRow {
  o_user: string;
  o_outcome: string;
  o_role: MemberRole | null;
  o_banned_until: Date | null;
  o_member_count: number | null;
  o_pin: string | null;
  o_title: string | null;
  o_host_id: string | null;
  o_status: JoinedRoom['status'] | null;
  o_locked: boolean | null;
  o_max_members: number | null;
  o_created_at: Date | null;
  o_name: string | null;
}

const isUniqueViolation = (err: unknown, constraint: string): boolean =>
  (err as { code?: string }).code === '23505' && (err as { constraint?: string }).constraint === constraint;

function toDecision(roomId: string, row: JoinRow): JoinDecision {
  switch (row.o_outcome) {
    case 'not_found':
      return { outcome: 'not_found' };
    case 'banned':
      return { outcome: 'banned', bannedUntil: row.o_banned_until! };
    case 'locked':
      return { outcome: 'locked' };
    case 'full':
      return { outcome: 'full', maxMembers: row.o_max_members! };
    case 'nickname_taken':
      return { outcome: 'nickname_taken' };
  }
  const room: JoinedRoom = {
    id: roomId,
    pin: row.o_pin!,
    title: row.o_title!,
    hostId: row.o_host_id!,
    status: row.o_status!,
    locked: row.o_locked!,
    maxMembers: row.o_max_members!,
    createdAt: row.o_created_at!,
  };
  if (row.o_outcome === 'not_member') return { outcome: 'not_member', room, memberCount: row.o_member_count! };
  return { outcome: row.o_outcome as 'joined' | 'rejoined', room, role: row.o_role!, memberCount: row.o_member_count!, name: row.o_name ?? '' };
}

export function createRoomRepository({ db }: { db: Db }) {
  /** Joins into one room, batched per room and mode (see coalesce.ts): one `room_join` statement per batch. */
  const joins = createCoalescer<{ userId: string; pin: string; name: string }, JoinDecision>(async (key, args) => {
    const admit = key.startsWith('a:');
    const roomId = key.slice(2);
    const users = args.map((a) => a.userId);
    const pins = args.map((a) => a.pin);
    const names = args.map((a) => a.name);
    const { rows } = await sql<JoinRow>`select * from room_join(${roomId}::uuid, ${users}::uuid[], ${pins}::text[], ${names}::text[], ${admit})`.execute(db);
    return rows.map((row) => toDecision(roomId, row));
  });

  /** Which of these users are active members, batched per room (see coalesce.ts): one indexed read per batch. */
  const actives = createCoalescer<string, boolean>(async (roomId, userIds) => {
    const rows = await db
      .selectFrom('room_members')
      .select('user_id')
      .where('room_id', '=', roomId)
      .where('user_id', 'in', userIds)
      .where('left_at', 'is', null)
      .execute();
    const active = new Set(rows.map((r) => r.user_id));
    return userIds.map((id) => active.has(id));
  });

  return {
    /**
     * Whether `userId` is an active member of the room now (read committed: a
     * kick or leave committed before this call is seen). The join re-reads
     * this after its socket entered the room's group, so a kick that
     * committed between the join's decision and that entry is not missed.
     */
    isActive(roomId: string, userId: string): Promise<boolean> {
      return actives(roomId, userId);
    },

    /** A user's standing in a room: an active member, and until when they are banned (if they are). One indexed read. */
    async standing(roomId: string, userId: string): Promise<{ active: boolean; bannedUntil: Date | null }> {
      const row = await db.selectFrom('room_members').select(['left_at', 'banned_until']).where('room_id', '=', roomId).where('user_id', '=', userId).executeTakeFirst();
      const bannedUntil = row?.banned_until && row.banned_until.getTime() > Date.now() ? row.banned_until : null;
      return { active: row !== undefined && row.left_at === null, bannedUntil };
    },

    /** Turn approval mode on or off in a room that has not ended. Returns false when it has ended. */
    async setApproval(roomId: string, approval: boolean): Promise<boolean> {
      const result = await db.updateTable('rooms').set({ approval }).where('id', '=', roomId).where('status', '<>', 'ended').executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    /**
     * Insert a room and its host membership in one transaction. Returns false
     * when the PIN is already used by a room that has not ended (the partial
     * unique index `rooms_live_pin_key`).
     */
    async insertRoom(input: NewRoomInput): Promise<boolean> {
      try {
        await db.transaction().execute(async (trx) => {
          await trx
            .insertInto('rooms')
            .values({ id: input.id, pin: input.pin, title: input.title, host_id: input.hostId, max_members: input.maxMembers, approval: input.approval, member_count: 1 })
            .execute();
          await trx
            .insertInto('room_members')
            .values({ room_id: input.id, user_id: input.hostId, role: 'host', joined_at: new Date(), name: input.hostName })
            .execute();
        });
        return true;
      } catch (err) {
        if (isUniqueViolation(err, 'rooms_live_pin_key')) return false;
        throw err;
      }
    },

    /**
     * Decide and record a join (`room_join`, one statement for the joins into
     * this room that queued up on this node while the previous batch was in
     * flight): the room's row lock is held for that statement and its commit
     * only, so concurrent joins cannot overfill a room, no lock is ever held
     * across a Redis call, and a burst of joins costs one commit per batch,
     * not one per join in a row. An active
     * member (joined, not left) comes back with their role whatever the lock
     * and the count (`rejoined`, nothing written); anyone else is refused
     * when banned, locked or full, in that order, then with `nickname_taken`
     * when another active member goes by `name` (trimmed by the caller,
     * compared case-insensitively). A rejoin keeps the name already held.
     * With `admit` false it only looks (no lock, no write): `rejoined`, or
     * `not_member`.
     */
    join(roomId: string, userId: string, pin: string, name: string, admit: boolean): Promise<JoinDecision> {
      return joins(`${admit ? 'a' : 'p'}:${roomId}`, { userId, pin, name });
    },

    /** Mark a member gone (`room_leave`, one statement). Returns the member count after, or null when they were not an active member. */
    async leave(roomId: string, userId: string): Promise<number | null> {
      const { rows } = await sql<{ count: number | null }>`select room_leave(${roomId}, ${userId}) as count`.execute(db);
      return rows[0]?.count ?? null;
    },

    /**
     * Remove a member and, with `bannedUntil`, refuse them until then. A user
     * who never joined gets a membership row that only carries the ban.
     * Returns whether they were an active member, and the name they went by
     * in the room (their display name when they never joined it).
     */
    async kick(roomId: string, userId: string, bannedUntil: Date | null): Promise<{ wasActive: boolean; name: string }> {
      const now = new Date();
      return db.transaction().execute(async (trx) => {
        // The room row first, as every membership write does (no deadlock with a join of the same user).
        await trx.selectFrom('rooms').select('id').where('id', '=', roomId).forUpdate().execute();
        const before = await trx
          .selectFrom('room_members')
          .select(['left_at', 'name'])
          .where('room_id', '=', roomId)
          .where('user_id', '=', userId)
          .forUpdate()
          .executeTakeFirst();
        let name = before?.name ?? null;
        if (name === null) {
          // Banning someone who never joined needs a row; refuse ids that name no user.
          const user = await trx.selectFrom('users').select(['id', 'display_name']).where('id', '=', userId).executeTakeFirst();
          if (!user) throw new AppError(ErrorCode.NotFound, 'No such user');
          name = user.display_name;
        }
        await trx
          .insertInto('room_members')
          .values({ room_id: roomId, user_id: userId, role: 'member', joined_at: now, left_at: now, banned_until: bannedUntil })
          .onConflict((oc) => oc.columns(['room_id', 'user_id']).doUpdateSet({ left_at: sql`coalesce(room_members.left_at, ${now})`, banned_until: bannedUntil }))
          .execute();
        const wasActive = before !== undefined && before.left_at === null;
        if (wasActive) await trx.updateTable('rooms').set((eb) => ({ member_count: eb('member_count', '-', 1) })).where('id', '=', roomId).execute();
        return { wasActive, name };
      });
    },

    /** Members holding a seat in a room (0 when there is no such room): one primary-key read. */
    async memberCount(roomId: string): Promise<number> {
      const row = await db.selectFrom('rooms').select('member_count').where('id', '=', roomId).executeTakeFirst();
      return row?.member_count ?? 0;
    },

    /** Set a room's status from `from` to `to`. Returns false when it was not in `from`. */
    async setStatus(roomId: string, from: 'lobby', to: 'live'): Promise<boolean> {
      const result = await db.updateTable('rooms').set({ status: to }).where('id', '=', roomId).where('status', '=', from).executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    /** Lock or unlock a room that has not ended. Returns false when it has ended. */
    async setLocked(roomId: string, locked: boolean): Promise<boolean> {
      const result = await db.updateTable('rooms').set({ locked }).where('id', '=', roomId).where('status', '<>', 'ended').executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    /**
     * End a room and empty it (every active member marked gone), in one
     * transaction. Returns the PIN to release, or null when it had already ended.
     */
    async endRoom(roomId: string): Promise<{ pin: string } | null> {
      return db.transaction().execute(async (trx) => {
        const now = new Date();
        const row = await trx
          .updateTable('rooms')
          .set({ status: 'ended', ended_at: now, member_count: 0 })
          .where('id', '=', roomId)
          .where('status', '<>', 'ended')
          .returning(['pin'])
          .executeTakeFirst();
        if (!row) return null;
        await trx.updateTable('room_members').set({ left_at: now }).where('room_id', '=', roomId).where('left_at', 'is', null).execute();
        return { pin: row.pin };
      });
    },

    /**
     * One page of active members in join order (the host first: it joined
     * first and never rejoins), after the member with join order `after`.
     * O(limit) whatever the room's size (`room_members_active_seq_idx`).
     */
    async membersPage(roomId: string, after: string | undefined, limit: number): Promise<MemberRecord[]> {
      let query = db
        .selectFrom('room_members')
        .select(['user_id', 'name', 'role', 'seq'])
        .where('room_id', '=', roomId)
        .where('left_at', 'is', null);
      if (after !== undefined) query = query.where('seq', '>', after);
      const rows = await query.orderBy('seq').limit(limit).execute();
      return rows.map((r) => ({ userId: r.user_id, name: r.name ?? '', role: r.role, seq: String(r.seq) }));
    },

    /** The names members go by in a room, by user id (members who never joined it are absent). */
    async names(roomId: string, userIds: readonly string[]): Promise<Map<string, string>> {
      if (userIds.length === 0) return new Map();
      const rows = await db.selectFrom('room_members').select(['user_id', 'name']).where('room_id', '=', roomId).where('user_id', 'in', userIds).execute();
      return new Map(rows.flatMap((r) => (r.name === null ? [] : [[r.user_id, r.name] as const])));
    },
  };
}
