-- room-unwait: take a user out of a room's waiting room (admitted or denied).
-- KEYS[1]  the room's waiting set (keys.roomWaiting)
-- KEYS[2]  the waiting users' names (keys.roomWaitingNames)
-- ARGV[1]  the user id
-- Returns  {name, count}: the user's display name when they were waiting
--          (false: not, or no longer), and the users still waiting.
-- Atomic so that of two hosts' sockets admitting and denying the same user at
-- once, exactly one finds them waiting.
local name = redis.call('HGET', KEYS[2], ARGV[1])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if removed == 0 then
  name = false
end
return {name, redis.call('ZCARD', KEYS[1])}
