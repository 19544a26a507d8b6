-- cache-fill: store a value loaded from PostgreSQL, but only if the entry was
-- not invalidated since the loader took its version token (cache-lease), then
-- release the caller's fill lock.
-- KEYS[1]  the cached entry           (keys.cache)
-- KEYS[2]  the entry's version token  (keys.cacheVersion)
-- KEYS[3]  the fill lock              (keys.cacheLock)
-- ARGV[1]  the version token the caller saw before it queried PostgreSQL
-- ARGV[2]  the entry, "<freshUntilMs>:<json>"
-- ARGV[3]  the entry's TTL, ms (fresh TTL with jitter plus the hard staleness)
-- ARGV[4]  the caller's lock token, or "" when it holds no lock
-- Returns  1 when the entry was stored, 0 when an invalidation came first.
-- Atomic because the check and the SET must not interleave with cache-invalidate:
-- a GET of the token followed by a separate SET lets an invalidation land in
-- between, and the value read before it would be written back (the stale-set race).
local stored = 0
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  -- The token must live at least as long as the entry it guards.
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
  end
  stored = 1
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
end
return stored
