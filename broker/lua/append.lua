-- Append one persistent message to a channel, atomically (DESIGN §4).
-- Dedupe check -> refuse banned/disbanded -> refuse a client sender who is not
-- allowed (sender_check.lua) -> next seq -> XADD log <seq>-0 -> badge bit (red_dot)
-- -> lookup index -> XADD dispatch -> remember the dedupe key.
--
-- KEYS: meta, log, badge, index, dispatch, dedupe, members, deny, allow
-- ARGV: message (msgpack), red_dot (0|1), dedupe_ttl_s, message_id,
--       client_msg_no, digest, new_epoch, now_ms, origin_conn,
--       check_uid ('' = trusted: membership and lists are not checked)
--       retention (keep at most this many log entries; 0 or absent = keep all)
-- Returns {1, seq, message_id, epoch} stored | {2, seq, message_id, digest} duplicate
--         | {-19} banned | {-24} disbanded | {-3|-4|-13|-25} sender refused
local meta, log, badge, index, dispatch, dedupe, members, deny, allow =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local message, red_dot, ttl, message_id, client_msg_no, digest, new_epoch, now_ms, origin =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local check_uid = ARGV[10]
local retention = tonumber(ARGV[11] or '0') or 0

local prior = redis.call('GET', dedupe)
if prior then
  local seq, id, old_digest = string.match(prior, '^(%d+):(%d+):(.*)$')
  -- Rewrite the same value: this makes the retry a write of this connection, so a
  -- WAITAOF that follows (strict durability) also covers the original write.
  redis.call('SET', dedupe, prior, 'KEEPTTL')
  return {2, tonumber(seq), id, old_digest}
end

local flags = redis.call('HMGET', meta, 'ban', 'disband', 'epoch')
if flags[1] == '1' then return {-19} end
if flags[2] == '1' then return {-24} end
local refused = sender_refusal(meta, members, deny, allow, check_uid)
if refused ~= 0 then return {-refused} end

local epoch = flags[3]
if not epoch then
  -- A new channel, or its meta was lost: never reuse a seq the log still holds.
  epoch = new_epoch
  local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)[1]
  local base = 0
  if last then base = tonumber(string.match(last[1], '^(%d+)')) end
  redis.call('HSET', meta, 'epoch', epoch, 'created', now_ms, 'seq', base)
end

local seq = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('HSET', meta, 'last_ms', now_ms)
if retention > 0 then
  -- Exact trim: sync reports `truncated` with the first kept seq (DESIGN §6).
  redis.call('XADD', log, 'MAXLEN', retention, seq .. '-0', 'm', message)
else
  redis.call('XADD', log, seq .. '-0', 'm', message)
end
if red_dot == '1' then redis.call('SETBIT', badge, seq, 1) end
redis.call('HSET', index, 'i' .. message_id, seq, 'c' .. client_msg_no, seq)
redis.call('XADD', dispatch, '*', 's', seq, 'm', message, 'o', origin)
redis.call('SET', dedupe, seq .. ':' .. message_id .. ':' .. digest, 'EX', ttl)
return {1, seq, message_id, epoch}
