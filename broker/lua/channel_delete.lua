-- Delete a channel: its log, meta, members, black/white lists, badge and lookup
-- index (every bucket up to the head's epoch, index.lua). Only `members_ver`
-- survives (moved on), so a worker never mistakes a re-created channel's members
-- for the cached ones of the deleted channel. A later send re-creates the channel
-- with a new epoch (append.lua).
--
-- KEYS: meta, log, members, deny, allow, badge, index
-- Returns {0} when there was no such channel | {1, {former members}}
local meta, log, members, deny, allow, badge, index =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local ver = redis.call('HGET', meta, 'members_ver')
local head = tonumber(redis.call('HGET', meta, 'seq') or '0') or 0
local meta_fields = redis.call('HLEN', meta)
if ver then meta_fields = meta_fields - 1 end
if meta_fields == 0 and redis.call('EXISTS', log, members, deny, allow) == 0 then
  return {0}
end
local former = redis.call('SMEMBERS', members)
redis.call('DEL', meta, log, members, deny, allow, badge)
if head > 0 then
  local batch = {}
  for k = 0, ix_epoch(head) do
    for b = 0, 2 ^ k - 1 do
      batch[#batch + 1] = index .. ':' .. k .. ':' .. b
      if #batch == 500 then
        redis.call('DEL', unpack(batch))
        batch = {}
      end
    end
  end
  if #batch > 0 then redis.call('DEL', unpack(batch)) end
end
redis.call('HSET', meta, 'members_ver', tonumber(ver or '0') + 1)
return {1, former}
