-- room-wait: put a user in a room's waiting room (approval mode), bounded.
-- KEYS[1]  the room's waiting set (keys.roomWaiting): user id -> ms when they began waiting
-- KEYS[2]  the waiting users' names (keys.roomWaitingNames): user id -> display name
-- ARGV[1]  the user id
-- ARGV[2]  the display name
-- ARGV[3]  now, ms since the epoch
-- ARGV[4]  the most users that may wait (ROOM_WAITING_MAX)
-- ARGV[5]  TTL of both keys, seconds (ROOM_WAITING_TTL_SECONDS), renewed by every arrival
-- Returns  {count, added}: the users waiting now and 1 when this user was added
--          (0: already waiting, their place kept); {-1, 0} when the room is full.
-- Atomic so that the bound holds under concurrent arrivals and the set and the
-- names never disagree.
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
if known then
  return {redis.call('ZCARD', KEYS[1]), 0}
end
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[4]) then
  return {-1, 0}
end
-- Scores strictly increase (a later arrival in the same ms gets the next one): the score is a page cursor.
local score = tonumber(ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] and tonumber(last[2]) >= score then
  score = tonumber(last[2]) + 1
end
redis.call('ZADD', KEYS[1], score, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {count + 1, 1}
