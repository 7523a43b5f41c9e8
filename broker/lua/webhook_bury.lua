-- Move a webhook job that failed its last attempt to the dead-letter stream.
--
-- KEYS: jobs, due, attempts, dead
-- ARGV: delivery id, attempt that failed, event, body, last error
-- Returns 1 dead-lettered | 0 not ours any more (settled or claimed again)
local id = ARGV[1]
local job = redis.call('HGET', KEYS[1], id)
if not job then return 0 end
if redis.call('HGET', KEYS[3], id) ~= ARGV[2] then return 0 end
redis.call('XADD', KEYS[4], '*', 'id', id, 'e', ARGV[3], 'd', ARGV[4],
  'err', ARGV[5], 'n', ARGV[2])
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
return 1
