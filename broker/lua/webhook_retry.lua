-- Schedule the next attempt of a webhook job after a failed one, unless the job was
-- settled meanwhile or another sender has claimed a later attempt (it owns it now).
--
-- KEYS: jobs, due, attempts
-- ARGV: delivery id, attempt that failed, due_ms
-- Returns 1 scheduled | 0 not ours any more
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[1], id) == 0 then return 0 end
if redis.call('HGET', KEYS[3], id) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], id)
return 1
