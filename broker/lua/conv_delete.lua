-- Hide a user's conversation up to a seq (conversations/delete); it reappears when
-- a newer message arrives. Forward only; a missing record stays missing.
--
-- KEYS: conv
-- ARGV: field, deleted_seq
-- Returns 1 if a record was there, else 0.
local conv = KEYS[1]
local field, target = ARGV[1], tonumber(ARGV[2])

local value = redis.call('HGET', conv, field)
if not value then return 0 end
local r, o, d = string.match(value, '^(%d+),(%d+),(%d+)$')
if target > tonumber(d) then
  redis.call('HSET', conv, field, string.format('%s,%s,%d', r, o, target))
end
return 1
