-- feed-archive-take: take the rooms whose archive hints are due, oldest first.
-- KEYS[1]  the pending set: room id -> when its oldest unarchived entry was hinted, ms (keys.feedArchivePending)
-- ARGV[1]  due time, ms: hints at or before it are taken (now - the archive delay)
-- ARGV[2]  most rooms to take
-- Returns  {room1, score1, room2, score2, ..., next}: the rooms taken with their
--          hint times, then the hint time of the oldest room left ('' when none).
--
-- Atomic because two workers taking at once must not take the same room: a
-- room goes to one worker (the range and the removal happen together).

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due, 2 do redis.call('ZREM', KEYS[1], due[i]) end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
due[#due + 1] = oldest[2] or ''
return due
