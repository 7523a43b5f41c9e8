-- The first n elements of a msgpack array of scalars (Redis's cmsgpack cannot read
-- bin, which the payload is). Integers above 2^53 lose precision (message ids):
-- compare them only as raw bytes. Returns a table of values, or nil if unreadable.
local function mp_read(data, pos)
  local b = string.byte(data, pos)
  if not b then return nil end
  local function uint(n)
    local v = 0
    for i = 1, n do v = v * 256 + string.byte(data, pos + i) end
    return v
  end
  local function bytes(len_size)
    local len = uint(len_size)
    local start = pos + 1 + len_size
    return string.sub(data, start, start + len - 1), start + len
  end
  if b <= 0x7f then return b, pos + 1 end
  if b >= 0xa0 and b <= 0xbf then
    local len = b - 0xa0
    return string.sub(data, pos + 1, pos + len), pos + 1 + len
  end
  if b >= 0xe0 then return b - 256, pos + 1 end
  if b == 0xc0 then return false, pos + 1 end
  if b == 0xc2 then return false, pos + 1 end
  if b == 0xc3 then return true, pos + 1 end
  if b == 0xcc then return uint(1), pos + 2 end
  if b == 0xcd then return uint(2), pos + 3 end
  if b == 0xce then return uint(4), pos + 5 end
  if b == 0xcf then return uint(8), pos + 9 end
  if b == 0xd0 or b == 0xd1 or b == 0xd2 or b == 0xd3 then
    local n = ({[0xd0] = 1, [0xd1] = 2, [0xd2] = 4, [0xd3] = 8})[b]
    local v = uint(n)
    if v >= 2 ^ (8 * n - 1) then v = v - 2 ^ (8 * n) end
    return v, pos + 1 + n
  end
  if b == 0xd9 or b == 0xc4 then return bytes(1) end
  if b == 0xda or b == 0xc5 then return bytes(2) end
  if b == 0xdb or b == 0xc6 then return bytes(4) end
  return nil
end

local function mp_fields(data, n)
  local b = string.byte(data, 1)
  local pos
  if b and b >= 0x90 and b <= 0x9f then
    pos = 2
  elseif b == 0xdc then
    pos = 4
  else
    return nil
  end
  local values = {}
  for i = 1, n do
    local v, next_pos = mp_read(data, pos)
    if v == nil then return nil end
    values[i], pos = v, next_pos
  end
  return values
end
