-- refresh-discard: forget a session that was opened but never handed out (the
-- account it was opened for could not be created).
-- KEYS[1]  the session hash            (keys.session(sid))
-- KEYS[2]  its first token's hash      (keys.refreshToken(sid, sha256(token)))
-- ARGV     none
-- Returns  the number of keys deleted (2, or fewer when they had gone).
-- One DEL of both keys (same hash tag): the session and its token go together.
return redis.call('DEL', KEYS[1], KEYS[2])
