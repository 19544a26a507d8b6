-- feed-log: append one entry to a stream that is not a room's feed (the system log).
-- KEYS[1]  the stream                    (keys.feedSystem)
-- KEYS[2]  its meta hash {epoch, last}   (keys.feedSystemMeta)
-- ARGV[1]  stream cap (XADD MAXLEN ~)
-- ARGV[2]  a fresh random epoch, used only if the stream has none
-- ARGV[3]  room id ('' for none)   ARGV[4] entry type
-- ARGV[5]  actor id ('' for none)  ARGV[6] actor name   ARGV[7] payload, JSON
-- Returns  {id, epoch}
--
-- Atomic because the `prev` link (the id of the entry before) and the meta's
-- `last` must move together with the append, or readers would see false gaps.

local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[2]
  local last = '0-0'
  local tail = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if tail[1] then last = tail[1][1] end
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'last', last)
end
local prev = redis.call('HGET', KEYS[2], 'last') or '0-0'
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  'r', ARGV[3], 't', ARGV[4], 'ai', ARGV[5], 'an', ARGV[6], 'p', ARGV[7], 'v', prev)
redis.call('HSET', KEYS[2], 'last', id)
return {id, epoch}
