-- presence-join: count one member socket as present in a room.
-- KEYS[1]  the room's sockets hash (keys.roomSockets): <node>|<socket> -> user id
-- KEYS[2]  the room's users hash (keys.roomUsers): user id -> socket count
-- KEYS[3]  the room's host grace deadline (keys.roomHostDeadline)
-- ARGV[1]  the socket field, <node incarnation>|<socket id>
-- ARGV[2]  the user id
-- ARGV[3]  the room's host id
-- ARGV[4]  TTL of the presence hashes, seconds (renewed by every join and heartbeat)
-- Returns  { online, hostBack }: online = 1 when the user went from no socket to one
--          (a user with several tabs counts once); hostBack = 1 when a pending
--          host grace deadline was cancelled.
-- Atomic because the socket field and the per-user count must change together,
-- or a concurrent leave could see a count that does not match the sockets and
-- announce a member offline while a tab is still open; and cancelling the host
-- deadline in the same step means a grace sweeper never ends a room whose host
-- is already back.
local online = 0
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    online = 1
  end
end
local hostBack = 0
if ARGV[2] == ARGV[3] then
  hostBack = redis.call('DEL', KEYS[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return { online, hostBack }
