-- pin-release: release a room's PIN when the room ends, then quarantine it.
-- KEYS[1]  the PIN claim (keys.pin)
-- ARGV[1]  the room id the claim must still name
-- ARGV[2]  quarantine, seconds (0: delete outright)
-- Returns  1 when released, 0 when the key is gone or names another room (left untouched).
-- Atomic because a GET then SET/DEL from the client could overwrite a claim
-- another room made in between (after ours expired): release must never touch
-- another room's PIN. The quarantine value `ended:<roomId>` keeps the PIN from
-- being claimed or resolved for a while, so stale clients cannot land in a newer room.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local quarantine = tonumber(ARGV[2])
if quarantine > 0 then
  redis.call('SET', KEYS[1], 'ended:' .. ARGV[1], 'EX', quarantine)
else
  redis.call('DEL', KEYS[1])
end
return 1
