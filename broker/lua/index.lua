-- The lookup index of a channel (shared by append, index_find, channel_delete).
-- Fields are 8-byte hashes (message id / client_msg_no, made in broker/keys.py),
-- values seqs. Epoch k holds seqs [M*2^k, M*2^(k+1)) (epoch 0: [1, 2M)) in 2^k
-- hashes "<index>:<k>:<bucket_hash mod 2^k>": about M messages each, so each stays
-- small and compactly encoded. A lookup probes the epochs up to the channel's head,
-- newest first. Bucket names share the channel's hash tag (one Cluster slot).
local IX_M = 32

local function ix_epoch(seq)
  local k, n = 0, math.floor(seq / IX_M)
  while n >= 2 do
    n = math.floor(n / 2)
    k = k + 1
  end
  return k
end

-- Integers as text with '%d': Lua's own number-to-text is '%.14g', whose float
-- formatting was a tenth of Redis' CPU in an append.
local function ix_bucket(index, k, bucket_hash)
  return index .. ':' .. string.format('%d:%d', k, bucket_hash % (2 ^ k))
end

-- The seq of `field` and the bucket holding it, or nil.
local function ix_find(index, head, field, bucket_hash)
  if head <= 0 then return nil end
  for k = ix_epoch(head), 0, -1 do
    local bucket = ix_bucket(index, k, bucket_hash)
    local seq = redis.call('HGET', bucket, field)
    if seq then return tonumber(seq), bucket end
  end
  return nil
end
