-- session-states: the state of several sessions in one call (the handshake's
-- session check, batched across the handshakes of one event-loop turn).
-- KEYS[i]  a session hash (keys.session(sid)), one per session asked about
-- ARGV     none
-- Returns  one entry per key, in order: the session's `state` field
--          ('active' or 'revoked'), or false when the session does not exist
--          (expired, or never existed).
-- Read-only, so atomicity is not what it is for: one EVALSHA replaces one HGET
-- round trip per handshake. Each key is read on its own (no atomicity across
-- keys): a per-key script (scripts.ts PER_KEY_SCRIPTS), called with keys of
-- many slots on one Redis and once per slot on a Redis Cluster.
local states = {}
for i = 1, #KEYS do
  states[i] = redis.call('HGET', KEYS[i], 'state')
end
return states
