-- feed-position: the current position {epoch, last} of a feed, creating its epoch if it has none.
-- KEYS[1]  the stream
-- KEYS[2]  its meta hash {epoch, last}
-- ARGV[1]  a fresh random epoch, used only if the feed has none
-- ARGV[2]  TTL of stream and meta, ms, refreshed here; 0 for feeds that do not expire
-- Returns  {epoch, last}; last is '0-0' for a feed without entries.
--
-- Atomic because two nodes reading the position of a new feed at once must
-- agree on one epoch (read-then-create from the client could make two).

local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[1]
  local last = '0-0'
  local tail = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if tail[1] then last = tail[1][1] end
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'last', last)
end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {epoch, redis.call('HGET', KEYS[2], 'last') or '0-0'}
