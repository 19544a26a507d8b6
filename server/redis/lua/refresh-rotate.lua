-- refresh-rotate: exchange a refresh token for its successor, once, and catch replays.
-- KEYS[1]  the session hash                    (keys.session(sid))
-- KEYS[2]  the presented token's hash          (keys.refreshToken(sid, sha256(presented)))
-- KEYS[3]  the successor token's hash          (keys.refreshToken(sid, sha256(successor)))
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  the successor's lifetime, ms (capped here at the session's absolute expiry)
-- ARGV[3]  reuse grace, ms: a token rotated this recently whose successor is still the
--          head answers 'race' (a concurrent refresh lost) instead of revoking
-- ARGV[4]  sha256 of the successor
-- Returns  { 'ok', uid, successorExpiryMs, sessionExpiryMs }
--          { 'race', uid }      lost a concurrent rotation within the grace: nothing changed
--          { 'reused', uid }    an already rotated token came back: the session is now revoked
--          { 'revoked', uid }   the session was revoked earlier
--          { 'invalid' }        unknown, expired, or the session is over
-- Atomic because check-then-mark from the client would let two concurrent
-- requests both see the token unused and both get successors (two chains
-- from one token); in one script exactly one caller wins, every other caller
-- sees 'used'.
local now = tonumber(ARGV[1])
local session = redis.call('HMGET', KEYS[1], 'uid', 'state', 'head', 'absExp')
local uid, state, head, absExp = session[1], session[2], session[3], tonumber(session[4])
if not uid then
  return { 'invalid' }
end
if state ~= 'active' then
  return { 'revoked', uid }
end
local token = redis.call('HMGET', KEYS[2], 'uid', 'exp', 'used', 'next', 'usedAt')
if not token[1] or tonumber(token[2]) <= now or now >= absExp then
  return { 'invalid' }
end
if token[3] == '1' then
  local grace = tonumber(ARGV[3])
  if grace > 0 and token[4] == head and now - tonumber(token[5]) <= grace then
    return { 'race', uid }
  end
  -- Replay of a rotated token: someone holds a copy. Revoke the whole family;
  -- the session hash keeps its TTL so its access tokens are refused until then.
  redis.call('HSET', KEYS[1], 'state', 'revoked', 'reason', 'reuse', 'revokedAt', now)
  return { 'reused', uid }
end
local successorExp = math.min(now + tonumber(ARGV[2]), absExp)
redis.call('HSET', KEYS[2], 'used', 1, 'usedAt', now, 'next', ARGV[4])
redis.call('HSET', KEYS[3], 'uid', uid, 'exp', successorExp, 'used', 0)
redis.call('PEXPIREAT', KEYS[3], successorExp)
redis.call('HSET', KEYS[1], 'head', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'rotations', 1)
return { 'ok', uid, successorExp, absExp }
