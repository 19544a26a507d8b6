-- cache-invalidate: after a write to PostgreSQL has committed, replace the
-- entry's version token and delete the entry.
-- KEYS[1]  the cached entry           (keys.cache)
-- KEYS[2]  the entry's version token  (keys.cacheVersion)
-- ARGV[1]  a new random version token
-- ARGV[2]  version token TTL, ms
-- Returns  1 when an entry was deleted, 0 when none was cached.
-- Atomic so that no cache-fill can run between the two steps: with the entry
-- deleted first and the token replaced second, a loader holding the old token
-- could store its old value in between. A token that expires is as good as a
-- replaced one: cache-fill only stores when the token it saw is still there.
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return redis.call('DEL', KEYS[1])
