-- Re-queue one dead letter as a fresh job with the same delivery id (receivers
-- de-duplicate by it). Deleting the dead entry first makes concurrent replays safe.
--
-- KEYS: dead, jobs, due, attempts
-- ARGV: dead entry id, delivery id, encoded job, now_ms
-- Returns 1 re-queued | 0 already replayed
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 1 then
  redis.call('HDEL', KEYS[4], ARGV[2])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
end
return 1
