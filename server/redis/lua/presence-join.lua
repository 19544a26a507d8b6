-- presence-join: count one member socket as present in a room.
-- KEYS[1]  the room's sockets hash (keys.roomSockets): <node>|<socket> -> user id
-- KEYS[2]  the room's users hash (keys.roomUsers): user id -> that user's socket fields, space-separated
-- KEYS[3]  the room's host grace deadline (keys.roomHostDeadline)
-- ARGV[1]  the socket field, <node incarnation>|<socket id>
-- ARGV[2]  the user id
-- ARGV[3]  the room's host id
-- ARGV[4]  TTL of the presence hashes, seconds (renewed by every join and heartbeat)
-- Returns  { online, hostBack, count }: online = 1 when the user went from no socket to one
--          (a user with several tabs counts once); hostBack = 1 when a pending host grace
--          deadline was cancelled; count = users online in the room now.
-- Atomic because the socket field and the user's socket list must change together,
-- or a concurrent leave could see a list that does not match the sockets and
-- announce a member offline while a tab is still open; cancelling the host
-- deadline in the same step means a grace sweeper never ends a room whose host
-- is already back. The node's room set and the user's rejoin hint live in other
-- slots: the caller writes them on the same connection just before this script
-- (presence.ts), so on one Redis a purge after this node crashes always finds
-- the room; on a Cluster the two are sent together and a crash between them
-- leaves at most a socket field that expires with the presence hashes.
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
