-- Fan-out bookkeeping of one conversation of one user (DESIGN §5). Every change is
-- a max (own_last_seq) or ZADD GT (recent), so a redelivered or reordered message
-- changes nothing.
--
-- KEYS: conv, recent  (both of one user: one slot)
-- ARGV: field, activity_ms (0: leave recent alone), own_seq (0: not the sender),
--       create_read (-1: update an existing record only; else read_seq of a new one)
-- Returns 1 if the record exists afterwards, else 0.
local conv, recent = KEYS[1], KEYS[2]
local field, ms = ARGV[1], ARGV[2]
local own, create_read = tonumber(ARGV[3]), tonumber(ARGV[4])

local value = redis.call('HGET', conv, field)
local r, o, d
if value then
  r, o, d = string.match(value, '^(%d+),(%d+),(%d+)$')
  r, o, d = tonumber(r), tonumber(o), tonumber(d)
elseif create_read >= 0 then
  r, o, d = create_read, 0, 0
else
  return 0
end
if not value or own > o then
  if own > o then o = own end
  redis.call('HSET', conv, field, string.format('%d,%d,%d', r, o, d))
end
if ms ~= '0' then redis.call('ZADD', recent, 'GT', ms, field) end
return 1
