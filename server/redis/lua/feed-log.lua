-- feed-log: append one entry to the system log stream and publish it on the log's live channel.
-- KEYS[1]  the stream                       (keys.feedSystem)
-- KEYS[2]  its meta hash {epoch, last, n}   (keys.feedSystemMeta)
-- KEYS[3]  its live channel (sharded)       (keys.feedSystemLive)
-- ARGV[1]  stream cap (XADD MAXLEN ~)
-- ARGV[2]  a fresh random epoch, used only if the stream has none
-- ARGV[3]  room id ('' for none)   ARGV[4] entry type
-- ARGV[5]  actor id ('' for none)  ARGV[6] actor name   ARGV[7] payload, JSON
-- ARGV[8]  the wire entry's JSON after its id and ts
-- Returns  {id, epoch}
--
-- Atomic because the `prev` link, the `n` count, the meta's `last` and the
-- live message must move together with the append, or readers would see
-- false gaps. Every key is in the `{feed:system}` slot.

--#include feed-link

local meta = redis.call('HMGET', KEYS[2], 'epoch', 'last', 'n')
local epoch, prev, n = meta[1], meta[2] or '0-0', tonumber(meta[3] or '0')
if not epoch then epoch, prev, n = begin_epoch(KEYS[1], KEYS[2], ARGV[2]) end
n = n + 1
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  'r', ARGV[3], 't', ARGV[4], 'ai', ARGV[5], 'an', ARGV[6], 'p', ARGV[7], 'v', prev, 'n', n)
redis.call('HSET', KEYS[2], 'last', id, 'n', n)
publish_live(KEYS[3], epoch, prev, id, '', ARGV[8])
return {id, epoch}
