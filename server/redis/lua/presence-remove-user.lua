-- presence-remove-user: remove every socket of one user from a room's presence
-- (the user left the room or was kicked), on whichever node the sockets are.
-- KEYS[1]  the room's sockets hash (keys.roomSockets)
-- KEYS[2]  the room's users hash (keys.roomUsers)
-- ARGV[1]  the user id
-- Returns  1 when the user was online (and now is not), else 0.
-- Atomic so that a concurrent join or leave of the same user cannot leave the
-- count and the socket fields out of step.
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i + 1] == ARGV[1] then
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
return redis.call('HDEL', KEYS[2], ARGV[1])
