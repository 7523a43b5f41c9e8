-- Add subscribers to a channel (optionally replacing all of them), atomically.
-- Moves meta `members_ver` when the member set changed, so workers drop their
-- cached member lists. Never touches seq, epoch, last_ms or created.
--
-- KEYS: meta, members
-- ARGV: reset (0|1), uid...
-- Returns {seq, {added uids}, {uids dropped by the reset}}
local meta, members = KEYS[1], KEYS[2]
local old = {}
if ARGV[1] == '1' then
  for _, uid in ipairs(redis.call('SMEMBERS', members)) do old[uid] = true end
  redis.call('DEL', members)
end
local added = {}
for i = 2, #ARGV do
  local uid = ARGV[i]
  if redis.call('SADD', members, uid) == 1 and not old[uid] then
    added[#added + 1] = uid
  end
end
local dropped = {}
for uid in pairs(old) do
  if redis.call('SISMEMBER', members, uid) == 0 then dropped[#dropped + 1] = uid end
end
if #added > 0 or #dropped > 0 then redis.call('HINCRBY', meta, 'members_ver', 1) end
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
return {seq, added, dropped}
