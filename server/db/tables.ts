/**
 * The database as Kysely sees it. Mirrors the migrations in `migrations/`;
 * a migration that changes a table changes its interface here too.
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

export interface UsersTable {
  id: Generated<string>;
  /** Unique (case-insensitively) among registered users; null for guests. */
  username: string | null;
  display_name: string;
  /** scrypt hash for registered users; null for guests. Never cached, logged or sent. */
  password_hash: string | null;
  kind: 'guest' | 'registered';
  created_at: Generated<Date>;
}

export interface RoomsTable {
  id: Generated<string>;
  pin: string;
  title: string;
  host_id: string;
  status: ColumnType<'lobby' | 'live' | 'ended', 'lobby' | 'live' | 'ended' | undefined>;
  locked: ColumnType<boolean, boolean | undefined, boolean>;
  /** Approval mode: new joiners wait until the host admits them. */
  approval: ColumnType<boolean, boolean | undefined, boolean>;
  max_members: number;
  /** Members holding a seat (left_at null), kept by every membership write under the room's row lock. */
  member_count: Generated<number>;
  created_at: Generated<Date>;
  ended_at: NullableTimestamp;
}

export interface RoomMembersTable {
  room_id: string;
  user_id: string;
  role: 'host' | 'member';
  joined_at: Timestamp;
  left_at: NullableTimestamp;
  banned_until: NullableTimestamp;
  /** The name the member goes by in this room (unique among its active members, case-insensitively); null only on rows that carry a ban alone. */
  name: string | null;
  /** Join order (a new value on every (re)join): the key of member pages. bigint arrives as a string. */
  seq: Generated<string>;
}

/** The feed archive, partitioned by day on `created_at` (partitions `activity_pYYYYMMDD`). */
export interface ActivityTable {
  room_id: string;
  /** The Redis Stream id of the entry. */
  entry_id: string;
  type: string;
  actor_id: string | null;
  payload: ColumnType<unknown, string, string>;
  created_at: Timestamp;
  /** The room's feed epoch the entry belongs to. */
  epoch: ColumnType<string, string | undefined, string>;
  /** The id of the entry before it in the stream ('0-0' for the first). */
  prev_id: string | null;
  actor_name: string | null;
  /** The stream id's two numbers (generated from `entry_id`), for ordering. bigint arrives as a string. */
  id_ms: ColumnType<string, never, never>;
  id_seq: ColumnType<string, never, never>;
}

export interface Database {
  users: UsersTable;
  rooms: RoomsTable;
  room_members: RoomMembersTable;
  activity: ActivityTable;
}

export type UserRow = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type RoomRow = Selectable<RoomsTable>;
export type NewRoom = Insertable<RoomsTable>;
export type RoomUpdate = Updateable<RoomsTable>;
export type RoomMemberRow = Selectable<RoomMembersTable>;
export type ActivityRow = Selectable<ActivityTable>;
