-- presence-remove-user: remove every socket of one user from a room's presence
-- (the user left the room or was kicked), on whichever node the sockets are.
-- The caller drops the room from the user's rejoin hint (another slot) alongside.
-- KEYS[1]  the room's sockets hash (keys.roomSockets)
-- KEYS[2]  the room's users hash (keys.roomUsers): user id -> socket fields, space-separated
-- ARGV[1]  the user id
-- Returns  1 when the user was online (and now is not), else 0.
-- Atomic so that a concurrent join or leave of the same user cannot leave the
-- socket list and the socket fields out of step. Costs O(the user's sockets),
-- whatever the size of the room.
local list = redis.call('HGET', KEYS[2], ARGV[1])
if not list then
  return 0
end
for field in string.gmatch(list, '%S+') do
  redis.call('HDEL', KEYS[1], field)
end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
