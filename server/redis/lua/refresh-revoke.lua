-- refresh-revoke: end a session (logout) given any of its refresh tokens.
-- KEYS[1]  the session hash                (keys.session(sid))
-- KEYS[2]  the presented token's hash      (keys.refreshToken(sid, sha256(presented)))
-- ARGV[1]  now, ms since the epoch
-- ARGV[2]  reason recorded on the session ('logout')
-- Returns  { 'revoked', uid }   the session is now revoked
--          { 'already', uid }   it was revoked before (logout is idempotent)
--          { 'invalid' }        no such token or session (expired, or never issued)
-- Atomic because the token check and the state change must see the same
-- session: a rotation between them could otherwise leave a live head.
local uid = redis.call('HGET', KEYS[1], 'uid')
if not uid or redis.call('EXISTS', KEYS[2]) == 0 then
  return { 'invalid' }
end
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then
  return { 'already', uid }
end
redis.call('HSET', KEYS[1], 'state', 'revoked', 'reason', ARGV[2], 'revokedAt', ARGV[1])
return { 'revoked', uid }
