-- presence-join: count one member socket as present in a room.
-- KEYS[1]  the room's sockets hash (keys.roomSockets): <node>|<socket> -> user id
-- KEYS[2]  the room's users hash (keys.roomUsers): user id -> that user's socket fields, space-separated
-- KEYS[3]  the room's host grace deadline (keys.roomHostDeadline)
-- KEYS[4]  this node incarnation's room set (keys.presenceNodeRooms)
-- KEYS[5]  the user's room hint (keys.userRooms)
-- ARGV[1]  the socket field, <node incarnation>|<socket id>
-- ARGV[2]  the user id
-- ARGV[3]  the room's host id
-- ARGV[4]  TTL of the presence hashes, seconds (renewed by every join and heartbeat)
-- ARGV[5]  the room id
-- ARGV[6]  TTL of the node's room set and of the user's room hint, seconds
-- Returns  { online, hostBack, count }: online = 1 when the user went from no socket to one
--          (a user with several tabs counts once); hostBack = 1 when a pending host grace
--          deadline was cancelled; count = users online in the room now.
-- Atomic because the socket field and the user's socket list must change together,
-- or a concurrent leave could see a list that does not match the sockets and
-- announce a member offline while a tab is still open; cancelling the host
-- deadline in the same step means a grace sweeper never ends a room whose host
-- is already back; and the node's room set is written in the same step as the
-- socket, so a purge after this node crashes always finds the room.
-- The node set and the user hint live outside the room's hash tag: like the feed
-- append, this script needs one Redis (no Cluster).
redis.call('SADD', KEYS[4], ARGV[5])
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('SADD', KEYS[5], ARGV[5])
redis.call('EXPIRE', KEYS[5], ARGV[6])
local online = 0
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  local list = redis.call('HGET', KEYS[2], ARGV[2])
  if list then
    redis.call('HSET', KEYS[2], ARGV[2], list .. ' ' .. ARGV[1])
  else
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
    online = 1
  end
end
local hostBack = 0
if ARGV[2] == ARGV[3] then
  hostBack = redis.call('DEL', KEYS[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return { online, hostBack, redis.call('HLEN', KEYS[2]) }
