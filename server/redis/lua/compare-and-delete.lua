-- compare-and-delete: delete a key only if it still holds the value the caller owns.
-- KEYS[1]  the key (a lock, a PIN claim)
-- ARGV[1]  the value the caller set
-- Returns  1 when deleted, 0 when the key is gone or now belongs to someone else.
-- Atomic because GET then DEL from the client could delete a value another
-- owner set in between (after our claim expired and theirs was made).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
