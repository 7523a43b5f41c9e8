-- Remove some or all subscribers of a channel, atomically; moves `members_ver`
-- when the member set changed.
--
-- KEYS: meta, members
-- ARGV: all (0|1), uid...   (with all=1 the uids are ignored)
-- Returns {removed uids}
local meta, members = KEYS[1], KEYS[2]
local removed = {}
if ARGV[1] == '1' then
  removed = redis.call('SMEMBERS', members)
  redis.call('DEL', members)
else
  for i = 2, #ARGV do
    if redis.call('SREM', members, ARGV[i]) == 1 then removed[#removed + 1] = ARGV[i] end
  end
end
if #removed > 0 then redis.call('HINCRBY', meta, 'members_ver', 1) end
return removed
