-- Extend a lease we own; take it again if it expired and nobody took it meanwhile
-- (a worker whose event loop stalled past the lease keeps its shard then).
-- KEYS: lease   ARGV: owner, lease_ms
-- Returns 1 if renewed or re-taken, 0 if another worker owns it now.
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
