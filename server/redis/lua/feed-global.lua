-- feed-global: copy archived room entries into the global stream, each once, and publish them live.
-- KEYS[1]  the global stream                               (keys.feedGlobal)
-- KEYS[2]  its meta hash {epoch, last, n}                  (keys.feedGlobalMeta)
-- KEYS[3]  its live channel (sharded)                      (keys.feedGlobalLive)
-- KEYS[4]  hash room id -> last room entry id copied       (keys.feedGlobalCopied)
-- ARGV[1]  stream cap (XADD MAXLEN ~)
-- ARGV[2]  a fresh random epoch, used only if the stream has none
-- ARGV[3]  the room id
-- ARGV[4..] six per entry, oldest first: room entry id, type, actor id, actor name,
--          payload JSON, the wire entry's JSON after its id and ts
-- Returns  the number of entries appended (entries at or before the room's
--          last copied id are skipped: a batch retried after a crash adds nothing).
--
-- Atomic because the copy bookkeeping, the `prev` links and the live
-- messages must move together with the appends. Every key is in the
-- `{feed:global}` slot; the room's own keys are not touched (another slot).

--#include feed-link

local function after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end

local meta = redis.call('HMGET', KEYS[2], 'epoch', 'last', 'n')
local epoch, prev, n = meta[1], meta[2] or '0-0', tonumber(meta[3] or '0')
if not epoch then epoch, prev, n = begin_epoch(KEYS[1], KEYS[2], ARGV[2]) end
local copied = redis.call('HGET', KEYS[4], ARGV[3]) or '0-0'
local added = 0
for i = 4, #ARGV, 6 do
  local entry = ARGV[i]
  if after(entry, copied) then
    n = n + 1
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
      'r', ARGV[3], 'i', entry, 't', ARGV[i + 1], 'ai', ARGV[i + 2], 'an', ARGV[i + 3], 'p', ARGV[i + 4], 'v', prev, 'n', n)
    publish_live(KEYS[3], epoch, prev, id, '', ARGV[i + 5])
    prev = id
    copied = entry
    added = added + 1
  end
end
if added > 0 then
  redis.call('HSET', KEYS[2], 'last', prev, 'n', n)
  redis.call('HSET', KEYS[4], ARGV[3], copied)
end
return added
