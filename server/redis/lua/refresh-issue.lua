-- refresh-issue: open a session (refresh-token family) with its first refresh token.
-- KEYS[1]  the session hash            (keys.session(sid))
-- KEYS[2]  the first token's hash      (keys.refreshToken(sid, sha256(token)))
-- ARGV[1]  user id
-- ARGV[2]  now, ms since the epoch
-- ARGV[3]  the token's expiry, ms since the epoch (already capped at the session's)
-- ARGV[4]  the session's absolute expiry, ms since the epoch
-- ARGV[5]  sha256 of the token (the session's head)
-- Returns  1, or 0 when the session id is already taken (never with random ids).
-- Atomic because a session without its head token, or a token whose session
-- does not exist, would be refused by rotation in confusing ways; and both
-- keys get their expiry in the same step, so nothing is ever left without a TTL.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'uid', ARGV[1], 'state', 'active', 'head', ARGV[5], 'created', ARGV[2], 'absExp', ARGV[4], 'rotations', 0)
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('HSET', KEYS[2], 'uid', ARGV[1], 'exp', ARGV[3], 'used', 0)
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
return 1
