-- Move a user's read cursor in one conversation forward (clearUnread, setUnread).
-- It never moves back, so unread is never raised. A missing record is created
-- (reference §4), and joins the conversation list at the channel's last activity.
--
-- KEYS: conv, recent
-- ARGV: field, read_seq, activity_ms (0: none)
-- Returns the read_seq now stored.
local conv, recent = KEYS[1], KEYS[2]
local field, target, ms = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local value = redis.call('HGET', conv, field)
if not value then
  redis.call('HSET', conv, field, string.format('%d,0,0', target))
  if ms ~= '0' then redis.call('ZADD', recent, 'GT', ms, field) end
  return target
end
local r, o, d = string.match(value, '^(%d+),(%d+),(%d+)$')
r = tonumber(r)
if target > r then
  redis.call('HSET', conv, field, string.format('%d,%s,%s', target, o, d))
  return target
end
return r
