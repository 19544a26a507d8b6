-- feed-append: append one entry to a room's feed stream and publish it on the room's live channel.
-- KEYS[1]  the room's stream                                   (keys.feedStream)
-- KEYS[2]  the room's meta hash {epoch, last, n, closed, ...}  (keys.feedMeta)
-- KEYS[3]  the room's live channel (sharded pub/sub)           (keys.feedLive)
-- KEYS[4]  optional: the idempotency key of (room, user, clientMsgId) (keys.feedMsgId)
-- ARGV[1]  room stream cap (XADD MAXLEN ~)
-- ARGV[2]  room stream and meta TTL, ms (refreshed on every append)
-- ARGV[3]  idempotency TTL, ms (used with KEYS[4])
-- ARGV[4]  a fresh random epoch, used only if the room has none (new stream, or Redis lost it)
-- ARGV[5]  entry type   ARGV[6] actor id ('' for none)   ARGV[7] actor name   ARGV[8] payload, JSON
-- ARGV[9]  the wire entry's JSON after its id and ts: `,"roomId":...,"payload":{...}}`
-- ARGV[10] whose feed membership the entry ends: '' nobody, '*' everyone (room.ended), or a user id
-- ARGV[11] '1': refuse when the feed is closed (a member's or a backend's publish); '' otherwise
-- ARGV[12] '1': close the feed after this entry (room.ended); '' otherwise
-- Returns  {id, epoch, status, prev}: status 0 appended, 1 duplicate (KEYS[4] already named
--          an entry: nothing is added and that entry's id is returned), 2 refused (closed).
--
-- The live message is `<epoch> <prev> <id> <ends>\n<entry JSON>`: readers check
-- the `prev` link against the last id they hold and repair a gap from the
-- stream before delivering anything after it.
--
-- Atomic because the idempotency check, the epoch, the append, the `prev`
-- link and the `n` count (which prove there is no gap, and bound a replay
-- without reading it), the closed flag and the live message must never be
-- seen half done: a retry between the check and the append would add a
-- duplicate, a reader between two appends would see a broken chain, and a
-- message published out of order would look like a gap. Every key is in the
-- room's hash slot.

--#include feed-link

if KEYS[4] then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    return {seen, redis.call('HGET', KEYS[2], 'epoch') or '', 1, ''}
  end
end

local meta = redis.call('HMGET', KEYS[2], 'epoch', 'last', 'n', 'closed')
local epoch, prev, n = meta[1], meta[2] or '0-0', tonumber(meta[3] or '0')
if ARGV[11] == '1' and meta[4] then
  return {'', epoch or '', 2, ''}
end
-- The epoch names one continuous life of the stream. It is created with the
-- stream; if it is missing, whatever came before is gone for readers.
if not epoch then epoch, prev, n = begin_epoch(KEYS[1], KEYS[2], ARGV[4]) end
n = n + 1
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  't', ARGV[5], 'ai', ARGV[6], 'an', ARGV[7], 'p', ARGV[8], 'v', prev, 'n', n)
redis.call('HSET', KEYS[2], 'last', id, 'n', n)
if ARGV[12] == '1' then redis.call('HSET', KEYS[2], 'closed', '1') end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if KEYS[4] then
  redis.call('SET', KEYS[4], id, 'PX', ARGV[3])
end
publish_live(KEYS[3], epoch, prev, id, ARGV[10], ARGV[9])
return {id, epoch, 0, prev}
