-- feed-archive-commit: a worker records how far it archived a room, and lets the room go.
-- KEYS[1]  the room's feed meta hash                   (keys.feedMeta)
-- KEYS[2]  the room's archive lease                    (keys.feedArchiveLease)
-- ARGV[1]  the worker's name
-- ARGV[2]  the epoch the worker archived
-- ARGV[3]  the id of the last entry it stored (or dead-lettered)
-- Returns  the room's last id ('' when its feed is gone or its epoch changed),
--          or false when the worker no longer held the lease (nothing is written:
--          the next holder archives from the old cursor, which adds nothing twice).
--
-- Atomic because the cursor may move only under the lease that guarded the
-- reads. Both keys are in the room's hash slot.

if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
redis.call('DEL', KEYS[2])
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'last')
if meta[1] ~= ARGV[2] then return '' end
redis.call('HSET', KEYS[1], 'archived', ARGV[3])
return meta[2] or '0-0'
