-- feed-archive-claim: one archive worker takes a room, and learns where its archive stands.
-- KEYS[1]  the room's feed meta hash {epoch, last, archived, ...}  (keys.feedMeta)
-- KEYS[2]  the room's archive lease                                (keys.feedArchiveLease)
-- ARGV[1]  the worker's name
-- ARGV[2]  lease TTL, ms (a worker that dies holding it loses it after this)
-- Returns  {epoch, last, archived} ('' for each when the room's feed is gone),
--          or false when another worker holds the room.
--
-- Atomic because the lease and the cursor it guards are read together: a
-- worker never archives from a cursor another worker is moving. Both keys
-- are in the room's hash slot.

local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return false end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'last', 'archived')
if not meta[1] then return {'', '', ''} end
return {meta[1], meta[2] or '0-0', meta[3] or '0-0'}
