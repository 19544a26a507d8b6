-- cache-lease: on a cache miss, read the entry again, take (or create) the
-- entry's version token, and try to take the short fill lock, in one step.
-- KEYS[1]  the cached entry           (keys.cache)
-- KEYS[2]  the entry's version token  (keys.cacheVersion)
-- KEYS[3]  the fill lock              (keys.cacheLock)
-- ARGV[1]  a fresh random version token, stored only when none exists
-- ARGV[2]  the caller's random lock token
-- ARGV[3]  lock TTL, ms
-- ARGV[4]  version token TTL, ms
-- ARGV[5]  the caller's clock, ms since the epoch: an entry "<freshUntilMs>:<json>"
--          with freshUntilMs above it is fresh
-- Returns  { entry or nil, version token, 1 when the caller now holds the lock else 0 }
--          A fresh entry is returned without taking the lock.
-- Atomic because the version token the caller will later present to cache-fill
-- must be the one that was current when it looked: an invalidation between
-- reading the token and taking the lock would otherwise be missed, and the
-- caller would write a value read before that invalidation back into the cache.
local entry = redis.call('GET', KEYS[1])
if entry then
  local freshUntil = tonumber(string.match(entry, '^(%d+):'))
  if freshUntil and freshUntil > tonumber(ARGV[5]) then
    return { entry, false, 0 }
  end
end
local version = redis.call('GET', KEYS[2])
if not version then
  version = ARGV[1]
  redis.call('SET', KEYS[2], version, 'PX', ARGV[4])
end
local locked = 0
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then
  locked = 1
end
return { entry or false, version, locked }
