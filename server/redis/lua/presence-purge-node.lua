-- presence-purge-node: drop every socket a dead node incarnation had in one room.
-- KEYS[1]  the room's sockets hash (keys.roomSockets)
-- KEYS[2]  the room's users hash (keys.roomUsers): user id -> socket fields, space-separated
-- KEYS[3]  the room's host grace deadline (keys.roomHostDeadline)
-- ARGV[1]  the dead node incarnation id
-- ARGV[2]  the room's host id ('' when unknown)
-- ARGV[3]  the host grace deadline to set if the host went offline, ms since the epoch
-- ARGV[4]  TTL of the deadline key, seconds
-- Returns  the ids of users who went offline (no socket left on any node).
-- Atomic so that each user's socket list matches its remaining sockets, and a
-- purge that runs twice (two sweepers) announces each user offline only once.
-- O(sockets in the room): it runs once per room of a dead node, never per join.
local prefix = ARGV[1] .. '|'
local fields = redis.call('HGETALL', KEYS[1])
local touched = {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[1], fields[i])
    touched[fields[i + 1]] = true
  end
end
local offline = {}
for user in pairs(touched) do
  local rest = {}
  for field in string.gmatch(redis.call('HGET', KEYS[2], user) or '', '%S+') do
    if string.sub(field, 1, #prefix) ~= prefix then
      rest[#rest + 1] = field
    end
  end
  if #rest > 0 then
    redis.call('HSET', KEYS[2], user, table.concat(rest, ' '))
  elseif redis.call('HDEL', KEYS[2], user) == 1 then
    offline[#offline + 1] = user
    if user == ARGV[2] then
      redis.call('SET', KEYS[3], ARGV[3], 'NX', 'EX', ARGV[4])
    end
  end
end
return offline
