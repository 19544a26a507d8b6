-- lib/feed-link: how a feed stream's entries link up, shared by the scripts that append to one.
-- (Redis scripts cannot import: `--#include feed-link` is replaced by this file when scripts load.)

-- A stream without an epoch (new, or its meta hash was lost) starts one: `fresh_epoch`, linked
-- after whatever entry the stream still holds. Returns epoch, prev, n.
local function begin_epoch(stream, meta_key, fresh_epoch)
  local prev = '0-0'
  local tail = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if tail[1] then prev = tail[1][1] end
  redis.call('HSET', meta_key, 'epoch', fresh_epoch)
  return fresh_epoch, prev, 0
end

-- Publish an appended entry on its live channel: `<epoch> <prev> <id> <ends>\n<entry JSON>`,
-- the JSON made of the id, the timestamp the id carries, and `rest` (the wire entry after both).
local function publish_live(channel, epoch, prev, id, ends, rest)
  local ms = string.match(id, '^(%d+)')
  redis.call('SPUBLISH', channel, epoch .. ' ' .. prev .. ' ' .. id .. ' ' .. ends .. '\n{"id":"' .. id .. '","ts":' .. ms .. rest)
end
