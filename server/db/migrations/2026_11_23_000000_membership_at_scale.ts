/**
 * Membership at scale: a join is one round trip to PostgreSQL and costs the
 * same in a room of 10 or 10,000.
 * - `rooms.member_count`: members holding a seat (joined, not left), kept by
 *   every membership write under the room's row lock, so capacity is checked
 *   without counting rows.
 * - `room_members.seq`: join order (a new value on every (re)join), the key
 *   of member pages; `room_members_active_seq_idx` serves them.
 * - `room_join(...)`: decides and records a join under the room's row lock,
 *   in one statement (the lock is held for microseconds, never across a
 *   Redis call); with `p_admit = false` it only reports whether the user
 *   already is a member (the rejoin fast path), without locking or writing.
 * - `room_leave(...)`: marks a member gone and decrements the count.
 */
import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code from a migration.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table rooms add column member_count integer not null default 0 check (member_count >= 0)`.execute(db);
  await sql`update rooms r set member_count = (select count(*) from room_members m where m.room_id = r.id and m.left_at is null)`.execute(db);
  await sql`create sequence room_members_seq`.execute(db);
  await sql`alter table room_members add column seq bigint not null default nextval('room_members_seq')`.execute(db);
  await sql`alter sequence room_members_seq owned by room_members.seq`.execute(db);
  await sql`create index room_members_active_seq_idx on room_members (room_id, seq) where left_at is null`.execute(db);

  // Lock order everywhere: the room row first, then member rows (no deadlock between joins, leaves and kicks).
  await sql`
    create function room_join(p_room uuid, p_user uuid, p_pin text, p_admit boolean,
      out o_outcome text, out o_role text, out o_banned_until timestamptz, out o_member_count integer,
      out o_pin text, out o_title text, out o_host_id uuid, out o_status text, out o_locked boolean,
      out o_max_members integer, out o_created_at timestamptz)
    language plpgsql as $fn$
    declare
      v_member record;
      v_known boolean;
    begin
      if p_admit then
        select r.pin, r.title, r.host_id, r.status, r.locked, r.max_members, r.created_at, r.member_count
          into o_pin, o_title, o_host_id, o_status, o_locked, o_max_members, o_created_at, o_member_count
          from rooms r where r.id = p_room for update;
      else
        select r.pin, r.title, r.host_id, r.status, r.locked, r.max_members, r.created_at, r.member_count
          into o_pin, o_title, o_host_id, o_status, o_locked, o_max_members, o_created_at, o_member_count
          from rooms r where r.id = p_room;
      end if;
      if not found or o_status = 'ended' or o_pin <> p_pin then
        o_outcome := 'not_found';
        return;
      end if;
      select m.role, m.left_at, m.banned_until into v_member
        from room_members m where m.room_id = p_room and m.user_id = p_user;
      v_known := found;
      if v_known and v_member.banned_until is not null and v_member.banned_until > now() then
        o_outcome := 'banned';
        o_banned_until := v_member.banned_until;
        return;
      end if;
      if v_known and v_member.left_at is null then
        o_outcome := 'rejoined';
        o_role := v_member.role;
        return;
      end if;
      if not p_admit then
        o_outcome := 'not_member';
        return;
      end if;
      o_role := case when o_host_id = p_user then 'host' when v_known then v_member.role else 'member' end;
      if o_role <> 'host' then
        if o_locked then
          o_outcome := 'locked';
          return;
        end if;
        if o_member_count >= o_max_members then
          o_outcome := 'full';
          return;
        end if;
      end if;
      insert into room_members (room_id, user_id, role, joined_at, left_at, banned_until)
        values (p_room, p_user, o_role, now(), null, null)
        on conflict (room_id, user_id) do update
          set role = excluded.role, joined_at = excluded.joined_at, left_at = null, banned_until = null, seq = nextval('room_members_seq');
      update rooms set member_count = member_count + 1 where id = p_room returning member_count into o_member_count;
      o_outcome := 'joined';
    end
    $fn$`.execute(db);

  await sql`
    create function room_leave(p_room uuid, p_user uuid) returns integer
    language plpgsql as $fn$
    declare
      v_count integer;
    begin
      perform 1 from rooms where id = p_room for update;
      update room_members set left_at = now() where room_id = p_room and user_id = p_user and left_at is null;
      if not found then
        return null;
      end if;
      update rooms set member_count = member_count - 1 where id = p_room returning member_count into v_count;
      return v_count;
    end
    $fn$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function room_leave(uuid, uuid)`.execute(db);
  await sql`drop function room_join(uuid, uuid, text, boolean)`.execute(db);
  await sql`drop index room_members_active_seq_idx`.execute(db);
  await sql`alter table room_members drop column seq`.execute(db);
  await sql`alter table rooms drop column member_count`.execute(db);
}
