-- room-join-probe: the first step of every room:join, before any PIN-guess accounting.
-- KEYS[1]  the PIN claim (keys.pin)
-- KEYS[2]  the user's room hint (keys.userRooms): ids of rooms the user joined and did not leave
-- Returns  { roomId or false, hinted }: the room the PIN names (false when unclaimed or
--          quarantined after its room ended) and 1 when the user's hint holds that room.
-- One script so that a join costs one round trip here, and so that a right and a
-- wrong PIN cost the same: the hint is read either way, so a client that is
-- blocked from guessing cannot tell live PINs by timing. The hint only picks the
-- rejoin fast path; PostgreSQL decides whether the user really is a member.
local value = redis.call('GET', KEYS[1])
local hinted = redis.call('SISMEMBER', KEYS[2], value or '')
if not value or string.sub(value, 1, 6) == 'ended:' then
  return { false, 0 }
end
return { value, hinted }
