-- presence-node-forget: declare a silent node incarnation dead and take the job of purging it.
-- KEYS[1]  live nodes (keys.presenceNodes): incarnation -> last heartbeat ms
-- KEYS[2]  nodes being purged (keys.presenceNodesPurging): incarnation -> lease end ms
-- ARGV[1]  the node incarnation
-- ARGV[2]  cutoff, ms: the node is dead if its last heartbeat is at or before it
-- ARGV[3]  now, ms
-- ARGV[4]  lease, ms
-- Returns  1 when this caller must purge the node now, else 0.
-- Atomic so that one sweeper of many wins each dead node (and a heartbeat that
-- arrives in between keeps the node alive), and a purge whose sweeper died is
-- taken over once its lease runs out.
local now = tonumber(ARGV[3])
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if beat then
  if tonumber(beat) > tonumber(ARGV[2]) then
    return 0
  end
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
  return 1
end
local lease = redis.call('ZSCORE', KEYS[2], ARGV[1])
if lease and tonumber(lease) <= now then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
  return 1
end
return 0
