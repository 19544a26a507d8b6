-- feed-append: append one entry to a room's feed stream and mirror it into the global stream.
-- KEYS[1]  the room's stream                       (keys.feedStream)
-- KEYS[2]  the room's meta hash {epoch, last}      (keys.feedMeta)
-- KEYS[3]  the global stream                       (keys.feedGlobal)
-- KEYS[4]  the global meta hash {epoch, last}      (keys.feedGlobalMeta)
-- KEYS[5]  optional: the idempotency key of (room, user, clientMsgId) (keys.feedMsgId)
-- ARGV[1]  room stream cap (XADD MAXLEN ~)
-- ARGV[2]  room stream and meta TTL, ms (refreshed on every append)
-- ARGV[3]  global stream cap (XADD MAXLEN ~)
-- ARGV[4]  idempotency TTL, ms (used with KEYS[5])
-- ARGV[5]  a fresh random epoch, used only if the room has none (new stream, or Redis lost it)
-- ARGV[6]  a fresh random epoch for the global stream, same rule
-- ARGV[7]  room id          ARGV[8]  entry type
-- ARGV[9]  actor id ('' for none)   ARGV[10] actor name   ARGV[11] payload, JSON
-- Returns  {id, epoch, duplicate}: duplicate is 1 when KEYS[5] already named an entry
--          (nothing is added and that entry's id is returned).
--
-- Atomic because the idempotency check, the epoch, the append, the `prev`
-- link (the id of the entry before, which lets readers prove there is no gap)
-- and the global copy that the archive reads must never be seen half done: a
-- retry between the check and the append would add a duplicate, a reader
-- between two appends would see a broken `prev` chain, and an entry missing
-- from the global stream would never reach PostgreSQL.

if KEYS[5] then
  local seen = redis.call('GET', KEYS[5])
  if seen then
    return {seen, redis.call('HGET', KEYS[2], 'epoch') or '', 1}
  end
end

-- The epoch names one continuous life of the stream. It is created with the
-- stream; if it is missing, whatever came before is gone for readers.
local function open(stream, meta, candidate)
  local current = redis.call('HMGET', meta, 'epoch', 'last')
  if current[1] then return current[1], current[2] or '0-0' end
  local last = '0-0'
  local tail = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if tail[1] then last = tail[1][1] end
  redis.call('HSET', meta, 'epoch', candidate, 'last', last)
  return candidate, last
end

local epoch, prev = open(KEYS[1], KEYS[2], ARGV[5])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  't', ARGV[8], 'ai', ARGV[9], 'an', ARGV[10], 'p', ARGV[11], 'v', prev)
redis.call('HSET', KEYS[2], 'last', id)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])

local _, gprev = open(KEYS[3], KEYS[4], ARGV[6])
local gid = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
  'r', ARGV[7], 'i', id, 'e', epoch, 'rv', prev,
  't', ARGV[8], 'ai', ARGV[9], 'an', ARGV[10], 'p', ARGV[11], 'v', gprev)
redis.call('HSET', KEYS[4], 'last', gid)

if KEYS[5] then
  redis.call('SET', KEYS[5], id, 'PX', ARGV[4])
end
return {id, epoch, 0}
