-- Seqs of lookup-index fields (lua/index.lua), read-only.
-- KEYS: meta, index
-- ARGV: field1, bucket_hash1, field2, bucket_hash2, ...
-- Returns one seq per field, 0 when not found.
local meta, index = KEYS[1], KEYS[2]
local head = tonumber(redis.call('HGET', meta, 'seq') or '0')
local found = {}
for i = 1, #ARGV, 2 do
  found[#found + 1] = ix_find(index, head, ARGV[i], tonumber(ARGV[i + 1])) or 0
end
return found
