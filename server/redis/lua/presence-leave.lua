-- presence-leave: remove one member socket from a room's presence.
-- KEYS[1]  the room's sockets hash (keys.roomSockets)
-- KEYS[2]  the room's users hash (keys.roomUsers): user id -> socket fields, space-separated
-- KEYS[3]  the room's host grace deadline (keys.roomHostDeadline)
-- ARGV[1]  the socket field, <node incarnation>|<socket id>
-- ARGV[2]  the room's host id
-- ARGV[3]  the host grace deadline to set if this was the host's last socket, ms since the epoch
-- ARGV[4]  TTL of the deadline key, seconds (a bound; the sweeper acts long before)
-- Returns  { userId or false, offline, hostDeadlineSet }
-- Atomic for the same reason as presence-join: the socket field, the user's
-- socket list and (for the host) the grace deadline move together, so exactly
-- one leave sees the list empty and announces the member offline.
local user = redis.call('HGET', KEYS[1], ARGV[1])
if not user then
  return { false, 0, 0 }
end
redis.call('HDEL', KEYS[1], ARGV[1])
local rest = {}
for field in string.gmatch(redis.call('HGET', KEYS[2], user) or '', '%S+') do
  if field ~= ARGV[1] then
    rest[#rest + 1] = field
  end
end
local offline = 0
local deadline = 0
if #rest > 0 then
  redis.call('HSET', KEYS[2], user, table.concat(rest, ' '))
else
  redis.call('HDEL', KEYS[2], user)
  offline = 1
  if user == ARGV[2] then
    -- NX: a deadline already running is not pushed back.
    if redis.call('SET', KEYS[3], ARGV[3], 'NX', 'EX', ARGV[4]) then
      deadline = 1
    end
  end
end
return { user, offline, deadline }
