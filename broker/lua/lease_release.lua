-- Hand a lease back only if we still own it.
-- KEYS: lease   ARGV: owner   Returns 1 if released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
