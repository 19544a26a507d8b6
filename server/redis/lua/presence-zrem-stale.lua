-- presence-zrem-stale: remove a sorted-set entry only if its score has not moved.
-- KEYS[1]  the sorted set (keys.hostDeadlines)
-- ARGV[1]  the member
-- ARGV[2]  the score the caller read
-- Returns  1 when removed, 0 when the entry is gone or was rescheduled meanwhile.
-- Atomic because ZSCORE then ZREM from the client could drop an entry that a
-- host leaving again had just rescheduled, and that room would never end.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
