-- feed-position: the current position {epoch, last, n} of a feed, creating its epoch if it has none.
-- KEYS[1]  the stream
-- KEYS[2]  its meta hash {epoch, last, n}
-- ARGV[1]  a fresh random epoch, used only if the feed has none
-- ARGV[2]  TTL of stream and meta, ms, refreshed here; 0 for feeds that do not expire
-- Returns  {epoch, last, n}; last is '0-0' for a feed without entries; n counts
--          the entries appended in this epoch (the difference of two entries'
--          `n` is the number of entries between them).
--
-- Atomic because two nodes reading the position of a new feed at once must
-- agree on one epoch (read-then-create from the client could make two).
-- Both keys are in one hash slot (the room's, or the feed's own tag).

local meta = redis.call('HMGET', KEYS[2], 'epoch', 'last', 'n')
local epoch = meta[1]
if not epoch then
  epoch = ARGV[1]
  local last = '0-0'
  local tail = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if tail[1] then last = tail[1][1] end
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'last', last, 'n', 0)
  meta = {epoch, last, '0'}
end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {epoch, meta[2] or '0-0', tonumber(meta[3] or '0')}
