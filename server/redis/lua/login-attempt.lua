-- login-attempt: admit one login attempt on an account under its failure backoff, and charge it.
-- KEYS[1]  the account's failure record, hash {n, last}   (keys.loginFailures(username))
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  failures allowed before the backoff starts
-- ARGV[3]  first backoff wait, ms (it doubles with every further failure)
-- ARGV[4]  longest backoff wait, ms
-- ARGV[5]  TTL of the record after each attempt, ms
-- Returns  0 when the attempt may go ahead (it is counted as a failure until
--          the login succeeds and the record is deleted), or the ms to wait.
--
-- Atomic because checking and charging must be one step: concurrent attempts
-- from many addresses would otherwise all pass the check before any of them
-- is counted, and a burst could try as many passwords as it has connections.
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local now = tonumber(ARGV[1])
local after = tonumber(ARGV[2])
if n >= after then
  local wait = math.min(tonumber(ARGV[3]) * (2 ^ (n - after)), tonumber(ARGV[4]))
  if now < last + wait then
    return math.ceil(last + wait - now)
  end
end
redis.call('HSET', KEYS[1], 'n', n + 1, 'last', now)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 0
