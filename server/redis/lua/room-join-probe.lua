-- room-join-probe: the first step of every room:join, before any PIN-guess accounting.
-- KEYS[1]  the PIN claim (keys.pin)
-- Returns  the room id the PIN names, or false when unclaimed or quarantined after its room ended.
-- The caller reads the user's rejoin hint (keys.userRooms, another slot) in the same
-- round trip, whatever the PIN names, so that a right and a wrong PIN cost the same:
-- a client that is blocked from guessing cannot tell live PINs by timing.
local value = redis.call('GET', KEYS[1])
if not value or string.sub(value, 1, 6) == 'ended:' then
  return false
end
return value
