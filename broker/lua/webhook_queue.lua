-- Turn outbox entries into webhook jobs, atomically with their acknowledgement, so
-- every entry ends up in exactly one job (docs/design-notes.md, webhook delivery ids).
--
-- KEYS: outbox, jobs, due, then one seen-marker key per event id the jobs carry
-- ARGV: group, now_ms, seen_ttl_ms, n (number of entry ids), entry ids x n,
--       then (delivery id, encoded job) pairs
-- Returns {1} written | {0, stale entry ids, indexes (1-based) of seen markers that
-- exist}: nothing is written; the caller drops those and calls again.
local outbox, jobs, due = KEYS[1], KEYS[2], KEYS[3]
local group, now_ms, seen_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = tonumber(ARGV[4])

-- An entry another worker already turned into a job is no longer pending.
local stale = {}
for i = 5, 4 + n do
  if #redis.call('XPENDING', outbox, group, ARGV[i], ARGV[i], 1) == 0 then
    stale[#stale + 1] = ARGV[i]
  end
end
-- An event id queued within the duplicate window (a redelivered producer entry).
local seen = {}
for k = 4, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 1 then seen[#seen + 1] = k - 3 end
end
if #stale > 0 or #seen > 0 then return {0, stale, seen} end

for j = 5 + n, #ARGV, 2 do
  -- A single event re-queued while its job still waits keeps the existing job.
  if redis.call('HSETNX', jobs, ARGV[j], ARGV[j + 1]) == 1 then
    redis.call('ZADD', due, now_ms, ARGV[j])
  end
end
if seen_ttl > 0 then
  for k = 4, #KEYS do redis.call('SET', KEYS[k], '1', 'PX', seen_ttl) end
end
for i = 5, 4 + n do
  redis.call('XACK', outbox, group, ARGV[i])
  redis.call('XDEL', outbox, ARGV[i])
end
return {1}
