-- Extend a lease only if we still own it.
-- KEYS: lease   ARGV: owner, lease_ms   Returns 1 if renewed, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
