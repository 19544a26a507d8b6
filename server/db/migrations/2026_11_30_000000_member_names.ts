/**
 * Member names per room: `room_members.name` is the name a member goes by in
 * that room (the `nickname` of their `room:join`, else their display name at
 * the time), unique among the room's active members case-insensitively.
 * - `room_members_active_name_idx` serves the check, whatever the room's size.
 * - `room_join(room, users[], pins[], names[], admit)` replaces the four-argument
 *   version: a new or returning member whose name an active member of the
 *   room already uses (another user) gets `nickname_taken`, nothing written;
 *   the check runs under the room's row lock, which every membership write
 *   takes first, so two joins cannot both take one name. Every row carries
 *   `o_name`: the name recorded (joined) or already held (rejoined).
 * Active rows written before this migration get their user's display name.
 * The four-argument `room_join` is kept, unused, as `room_join_unnamed`.
 */
import { sql, type Kysely } from 'kysely';

// Frozen in time: never import application code from a migration.

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table room_members add column name text`.execute(db);
  await sql`update room_members m set name = u.display_name from users u where u.id = m.user_id and m.left_at is null`.execute(db);
  await sql`create index room_members_active_name_idx on room_members (room_id, lower(name)) where left_at is null`.execute(db);
  // Kept under another name, unused, so that `down` can put it back as it was.
  await sql`alter function room_join(uuid, uuid[], text[], boolean) rename to room_join_unnamed`.execute(db);

  // Lock order everywhere: the room row first, then member rows (no deadlock between joins, leaves and kicks).
  await sql`
    create function room_join(p_room uuid, p_users uuid[], p_pins text[], p_names text[], p_admit boolean)
    returns table (o_user uuid, o_outcome text, o_role text, o_banned_until timestamptz, o_member_count integer,
      o_pin text, o_title text, o_host_id uuid, o_status text, o_locked boolean, o_max_members integer, o_created_at timestamptz,
      o_name text)
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
        o_name := null;
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
        select m.role, m.left_at, m.banned_until, m.name into v_member
          from room_members m where m.room_id = p_room and m.user_id = o_user;
        v_known := found;
        if v_known and v_member.banned_until is not null and v_member.banned_until > now() then
          o_outcome := 'banned';
          o_banned_until := v_member.banned_until;
        elsif v_known and v_member.left_at is null then
          o_outcome := 'rejoined';
          o_role := v_member.role;
          o_name := coalesce(v_member.name, p_names[i]);
        elsif not p_admit then
          o_outcome := 'not_member';
        else
          o_role := case when v_room.host_id = o_user then 'host' when v_known then v_member.role else 'member' end;
          if o_role <> 'host' and v_room.locked then
            o_outcome := 'locked';
          elsif o_role <> 'host' and v_count >= v_room.max_members then
            o_outcome := 'full';
          elsif exists (select 1 from room_members m where m.room_id = p_room and m.left_at is null
                          and lower(m.name) = lower(p_names[i]) and m.user_id <> o_user) then
            o_outcome := 'nickname_taken';
            o_role := null;
          else
            insert into room_members (room_id, user_id, role, joined_at, left_at, banned_until, name)
              values (p_room, o_user, o_role, now(), null, null, p_names[i])
              on conflict (room_id, user_id) do update
                set role = excluded.role, joined_at = excluded.joined_at, left_at = null, banned_until = null,
                  name = excluded.name, seq = nextval('room_members_seq');
            v_count := v_count + 1;
            v_joined := v_joined + 1;
            o_member_count := v_count;
            o_outcome := 'joined';
            o_name := p_names[i];
          end if;
        end if;
        return next;
      end loop;
      if v_joined > 0 then
        update rooms set member_count = v_count where id = p_room;
      end if;
    end
    $fn$`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function room_join(uuid, uuid[], text[], text[], boolean)`.execute(db);
  await sql`drop index room_members_active_name_idx`.execute(db);
  await sql`alter table room_members drop column name`.execute(db);
  await sql`alter function room_join_unnamed(uuid, uuid[], text[], boolean) rename to room_join`.execute(db);
}
