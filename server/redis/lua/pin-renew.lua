-- pin-renew: extend a live room's PIN claim, or re-claim it if the key vanished.
-- KEYS[1]  the PIN claim (keys.pin)
-- ARGV[1]  the room id the claim must name
-- ARGV[2]  TTL, seconds
-- Returns  1 renewed, 2 re-claimed (the key was gone, e.g. Redis lost its data),
--          0 the key names another room or is quarantined (left untouched).
-- Atomic because the TTL may only be extended while the key still names this
-- room: a separate GET then EXPIRE could extend a claim another room just made.
local value = redis.call('GET', KEYS[1])
if value == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
if value == false then
  -- The PostgreSQL partial unique index still guarantees no other live room has this PIN.
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX')
  return 2
end
return 0
