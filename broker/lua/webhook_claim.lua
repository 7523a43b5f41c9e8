-- Lease due webhook jobs to one sender: each claimed job's due time moves to the end
-- of its lease, so a sender that dies mid-POST hands it back by simply expiring.
-- Claiming counts the attempt, so a job that crashes senders still reaches its limit.
--
-- KEYS: due, jobs, attempts
-- ARGV: now_ms, limit, lease_ms
-- Returns {next due ms or -1, id1, job1, attempt1, id2, ...}
local due, jobs, attempts = KEYS[1], KEYS[2], KEYS[3]
local now_ms, limit, lease_ms = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])

local out = {-1}
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now_ms, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local job = redis.call('HGET', jobs, id)
  if job then
    redis.call('ZADD', due, now_ms + lease_ms, id)
    out[#out + 1] = id
    out[#out + 1] = job
    out[#out + 1] = redis.call('HINCRBY', attempts, id, 1)
  else
    -- Settled elsewhere; forget the leftover schedule entry.
    redis.call('ZREM', due, id)
    redis.call('HDEL', attempts, id)
  end
end
local head = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
if head[2] then out[1] = tonumber(head[2]) end
return out
