-- presence-host-claim: claim the right to end a room whose host grace ran out.
-- KEYS[1]  the room's host grace deadline (keys.roomHostDeadline)
-- KEYS[2]  the room's users hash (keys.roomUsers): a field per user online
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  the room's host id
-- ARGV[3]  lease, ms: if the claimer dies before ending the room, another node claims again after it
-- Returns  { 1, lease end } claimed: end the room now;
--          { 0, deadline }  not due yet (reschedule the index entry to the deadline);
--          { -1, 0 }        no deadline (host back, or room already handled): drop the index entry.
-- Atomic so that exactly one node of many running the sweeper wins a due
-- deadline, and a host who came back (presence-join deletes the deadline)
-- is never ended by a claim that read the deadline just before.
local deadline = redis.call('GET', KEYS[1])
if not deadline then
  return { -1, 0 }
end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  redis.call('DEL', KEYS[1])
  return { -1, 0 }
end
local now = tonumber(ARGV[1])
if tonumber(deadline) > now then
  return { 0, tonumber(deadline) }
end
local lease = now + tonumber(ARGV[3])
redis.call('SET', KEYS[1], lease, 'KEEPTTL')
return { 1, lease }
