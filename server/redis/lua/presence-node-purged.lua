-- presence-node-purged: forget a dead node incarnation once all its rooms are purged.
-- KEYS[1]  nodes being purged (keys.presenceNodesPurging)
-- KEYS[2]  the node's room set (keys.presenceNodeRooms)
-- ARGV[1]  the node incarnation
-- Returns  1 when forgotten.
-- Atomic so the purge lease and the room list disappear together: a sweeper
-- never takes over a finished purge with its room list already gone half-way.
redis.call('DEL', KEYS[2])
return redis.call('ZREM', KEYS[1], ARGV[1])
