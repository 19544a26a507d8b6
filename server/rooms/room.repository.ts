/**
 * Rooms and memberships in PostgreSQL: the system of record. Reads of room
 * state go through the cache-aside loader; this module holds the writes and
 * the decisions that must see committed state under a row lock (join, kick).
 */
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import { AppError, ErrorCode } from '../errors.ts';
import type { MemberRole } from '../../shared/schemas.ts';

export type RoomRepository = ReturnType<typeof createRoomRepository>;

export interface NewRoomInput {
  id: string;
  pin: string;
  title: string;
  hostId: string;
  maxMembers: number;
}

/** Why a join was refused, decided under the room's row lock. */
export type JoinRefusal =
  | { refused: 'not_found' }
  | { refused: 'banned'; bannedUntil: Date }
  | { refused: 'locked' }
  | { refused: 'full' };

export type JoinDecision = { refused: null; role: MemberRole; rejoined: boolean; newlyJoined: boolean } | JoinRefusal;

export interface MemberRecord {
  userId: string;
  name: string;
  role: MemberRole;
}

const isUniqueViolation = (err: unknown, constraint: string): boolean =>
  (err as { code?: string }).code === '23505' && (err as { constraint?: string }).constraint === constraint;

export function createRoomRepository({ db }: { db: Db }) {
  return {
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
            .values({ id: input.id, pin: input.pin, title: input.title, host_id: input.hostId, max_members: input.maxMembers })
            .execute();
          await trx
            .insertInto('room_members')
            .values({ room_id: input.id, user_id: input.hostId, role: 'host', joined_at: new Date() })
            .execute();
        });
        return true;
      } catch (err) {
        if (isUniqueViolation(err, 'rooms_live_pin_key')) return false;
        throw err;
      }
    },

    /**
     * Decide and record a join under the room's row lock, so that concurrent
     * joins cannot overfill a room. An active member (joined, not left) comes
     * back with their role whatever the lock and the count; anyone else is
     * refused when banned, locked or full, in that order.
     */
    async join(roomId: string, userId: string): Promise<JoinDecision> {
      return db.transaction().execute(async (trx): Promise<JoinDecision> => {
        const room = await trx
          .selectFrom('rooms')
          .select(['host_id', 'status', 'locked', 'max_members'])
          .where('id', '=', roomId)
          .forUpdate()
          .executeTakeFirst();
        if (!room || room.status === 'ended') return { refused: 'not_found' };
        const member = await trx
          .selectFrom('room_members')
          .select(['role', 'left_at', 'banned_until'])
          .where('room_id', '=', roomId)
          .where('user_id', '=', userId)
          .executeTakeFirst();
        const now = new Date();
        if (member?.banned_until && member.banned_until > now) return { refused: 'banned', bannedUntil: member.banned_until };
        if (member && member.left_at === null) return { refused: null, role: member.role, rejoined: true, newlyJoined: false };
        const role: MemberRole = room.host_id === userId ? 'host' : (member?.role ?? 'member');
        if (role !== 'host') {
          if (room.locked) return { refused: 'locked' };
          const { count } = await trx
            .selectFrom('room_members')
            .select((eb) => eb.fn.countAll<string>().as('count'))
            .where('room_id', '=', roomId)
            .where('left_at', 'is', null)
            .executeTakeFirstOrThrow();
          if (Number(count) >= room.max_members) return { refused: 'full' };
        }
        await trx
          .insertInto('room_members')
          .values({ room_id: roomId, user_id: userId, role, joined_at: now, left_at: null, banned_until: null })
          .onConflict((oc) => oc.columns(['room_id', 'user_id']).doUpdateSet({ joined_at: now, left_at: null, banned_until: null, role }))
          .execute();
        return { refused: null, role, rejoined: member !== undefined, newlyJoined: true };
      });
    },

    /** Mark a member as gone. Returns false when they were not an active member. */
    async leave(roomId: string, userId: string): Promise<boolean> {
      const result = await db
        .updateTable('room_members')
        .set({ left_at: new Date() })
        .where('room_id', '=', roomId)
        .where('user_id', '=', userId)
        .where('left_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    },

    /**
     * Remove a member and, with `bannedUntil`, refuse them until then. A user
     * who never joined gets a membership row that only carries the ban.
     * Returns whether they were an active member.
     */
    async kick(roomId: string, userId: string, bannedUntil: Date | null): Promise<boolean> {
      const now = new Date();
      return db.transaction().execute(async (trx) => {
        const before = await trx
          .selectFrom('room_members')
          .select(['left_at'])
          .where('room_id', '=', roomId)
          .where('user_id', '=', userId)
          .forUpdate()
          .executeTakeFirst();
        if (before === undefined) {
          // Banning someone who never joined needs a row; refuse ids that name no user.
          const user = await trx.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst();
          if (!user) throw new AppError(ErrorCode.NotFound, 'No such user');
        }
        await trx
          .insertInto('room_members')
          .values({ room_id: roomId, user_id: userId, role: 'member', joined_at: now, left_at: now, banned_until: bannedUntil })
          .onConflict((oc) => oc.columns(['room_id', 'user_id']).doUpdateSet({ left_at: sql`coalesce(room_members.left_at, ${now})`, banned_until: bannedUntil }))
          .execute();
        return before !== undefined && before.left_at === null;
      });
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
          .set({ status: 'ended', ended_at: now })
          .where('id', '=', roomId)
          .where('status', '<>', 'ended')
          .returning(['pin'])
          .executeTakeFirst();
        if (!row) return null;
        await trx.updateTable('room_members').set({ left_at: now }).where('room_id', '=', roomId).where('left_at', 'is', null).execute();
        return { pin: row.pin };
      });
    },

    /** Active members (joined, not left) with their display names, host first. */
    async activeMembers(roomId: string): Promise<MemberRecord[]> {
      const rows = await db
        .selectFrom('room_members')
        .innerJoin('users', 'users.id', 'room_members.user_id')
        .select(['room_members.user_id', 'users.display_name', 'room_members.role', 'room_members.joined_at'])
        .where('room_members.room_id', '=', roomId)
        .where('room_members.left_at', 'is', null)
        .orderBy('room_members.joined_at')
        .execute();
      return rows
        .map((r) => ({ userId: r.user_id, name: r.display_name, role: r.role }))
        .sort((a, b) => (a.role === b.role ? 0 : a.role === 'host' ? -1 : 1));
    },

    /** Whether `userId` is an active member of the room. */
    async isActiveMember(roomId: string, userId: string): Promise<boolean> {
      const row = await db
        .selectFrom('room_members')
        .select('user_id')
        .where('room_id', '=', roomId)
        .where('user_id', '=', userId)
        .where('left_at', 'is', null)
        .executeTakeFirst();
      return row !== undefined;
    },

    /** Display names by user id. */
    async names(userIds: readonly string[]): Promise<Map<string, string>> {
      if (userIds.length === 0) return new Map();
      const rows = await db.selectFrom('users').select(['id', 'display_name']).where('id', 'in', userIds).execute();
      return new Map(rows.map((r) => [r.id, r.display_name]));
    },
  };
}
