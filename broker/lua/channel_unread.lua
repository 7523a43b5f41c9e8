-- Read a channel's head and the unread count after a cursor, in one consistent step.
-- Unread = red_dot bits in the badge bitmap for seqs cursor+1 .. last seq: BITCOUNT
-- over whole bytes plus the two edge bytes counted here (Redis 6.2 has no
-- BITCOUNT ... BIT). Read-only.
--
-- KEYS: meta, badge, members
-- ARGV: cursor
-- Returns {last_seq, last_ms, large_flag (0|1), member_count, unread}
local meta, badge, members = KEYS[1], KEYS[2], KEYS[3]
local cursor = tonumber(ARGV[1])

local head = redis.call('HMGET', meta, 'seq', 'last_ms', 'large')
local last = tonumber(head[1] or '0')
local last_ms = tonumber(head[2] or '0')
local large = 0
if head[3] == '1' then large = 1 end
local count = redis.call('SCARD', members)

-- Set bits of one byte at bit positions lo..hi (0 = most significant).
local function edge(byte_index, lo, hi)
  local s = redis.call('GETRANGE', badge, byte_index, byte_index)
  if s == '' then return 0 end
  local v = string.byte(s)
  local n = 0
  for i = lo, hi do
    if math.floor(v / 2 ^ (7 - i)) % 2 == 1 then n = n + 1 end
  end
  return n
end

local unread = 0
local first = cursor + 1
if first <= last then
  local fb, lb = math.floor(first / 8), math.floor(last / 8)
  if fb == lb then
    unread = edge(fb, first % 8, last % 8)
  else
    unread = edge(fb, first % 8, 7) + edge(lb, 0, last % 8)
    if lb - fb >= 2 then
      unread = unread + redis.call('BITCOUNT', badge, fb + 1, lb - 1)
    end
  end
end
return {last, last_ms, large, count, unread}
