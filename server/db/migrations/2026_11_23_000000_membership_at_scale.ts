/**
 * Membership at scale: a join is one round trip to PostgreSQL and costs the
 * same in a room of 10 or 10,000.
 * - `rooms.member_count`: members holding a seat (joined, not left), kept by
 *   every membership write under the room's row lock, so capacity is checked
 *   without counting rows.
 * - `room_members.seq`: join order (a new value on every (re)join), the key
 *   of member pages; `room_members_active_seq_idx` serves them.
 * - `room_join(room, users[], pins[], admit)`: decides and records the joins
 *   of several users into one room under the room's row lock, in one
 *   statement and one commit (a node sends the joins that queued up while
 *   its previous one was in flight: the lock is taken once per batch, held
 *   for the statement and its commit, never across a Redis call); with
 *   `admit` false it only reports who already is a member (the rejoin fast
 *   path), without locking or writing. One row per user, in order.
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
    create function room_join(p_room uuid, p_users uuid[], p_pins text[], p_admit boolean)
    returns table (o_user uuid, o_outcome text, o_role text, o_banned_until timestamptz, o_member_count integer,
      o_pin text, o_title text, o_host_id uuid, o_status text, o_locked boolean, o_max_members integer, o_created_at timestamptz)
    language plpgsql as $fn$
    declare
      v_room record;
      v_room_found boolean;
      v_member record;
      v_known boolean;
      v_count integer;
      v_joined integer := 0;
    begin
      if p_admit then
        select r.pin, r.title, r.host_id, r.status, r.locked, r.max_members, r.created_at, r.member_count
          into v_room from rooms r where r.id = p_room for update;
      else
        select r.pin, r.title, r.host_id, r.status, r.locked, r.max_members, r.created_at, r.member_count
          into v_room from rooms r where r.id = p_room;
      end if;
      v_room_found := found;
      v_count := v_room.member_count;
      for i in 1 .. coalesce(array_length(p_users, 1), 0) loop
        o_user := p_users[i];
        o_role := null;
        o_banned_until := null;
        o_pin := v_room.pin;
        o_title := v_room.title;
        o_host_id := v_room.host_id;
        o_status := v_room.status;
        o_locked := v_room.locked;
        o_max_members := v_room.max_members;
        o_created_at := v_room.created_at;
        o_member_count := v_count;
        if not v_room_found or v_room.status = 'ended' or v_room.pin <> p_pins[i] then
          o_outcome := 'not_found';
          return next;
          continue;
        end if;
        select m.role, m.left_at, m.banned_until into v_member
          from room_members m where m.room_id = p_room and m.user_id = o_user;
        v_known := found;
        if v_known and v_member.banned_until is not null and v_member.banned_until > now() then
          o_outcome := 'banned';
          o_banned_until := v_member.banned_until;
        elsif v_known and v_member.left_at is null then
          o_outcome := 'rejoined';
          o_role := v_member.role;
        elsif not p_admit then
          o_outcome := 'not_member';
        else
          o_role := case when v_room.host_id = o_user then 'host' when v_known then v_member.role else 'member' end;
          if o_role <> 'host' and v_room.locked then
            o_outcome := 'locked';
          elsif o_role <> 'host' and v_count >= v_room.max_members then
            o_outcome := 'full';
          else
            insert into room_members (room_id, user_id, role, joined_at, left_at, banned_until)
              values (p_room, o_user, o_role, now(), null, null)
              on conflict (room_id, user_id) do update
                set role = excluded.role, joined_at = excluded.joined_at, left_at = null, banned_until = null, seq = nextval('room_members_seq');
            v_count := v_count + 1;
            v_joined := v_joined + 1;
            o_member_count := v_count;
            o_outcome := 'joined';
          end if;
        end if;
        return next;
      end loop;
      if v_joined > 0 then
        update rooms set member_count = v_count where id = p_room;
      end if;
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
  await sql`drop function room_join(uuid, uuid[], text[], boolean)`.execute(db);
  await sql`drop index room_members_active_seq_idx`.execute(db);
  await sql`alter table room_members drop column seq`.execute(db);
  await sql`alter table rooms drop column member_count`.execute(db);
}
