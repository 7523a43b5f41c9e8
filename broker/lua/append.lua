-- Append one persistent message to a channel, atomically (DESIGN §4).
-- Dedupe check -> refuse banned/disbanded -> refuse a client sender who is not
-- allowed (sender_check.lua) -> next seq -> XADD log <seq>-0 -> badge bit (red_dot)
-- -> lookup index (index.lua) -> XADD dispatch (a reference, not the message).
--
-- Dedupe uses the lookup index: the client_msg_no field points at the stored
-- message, which is a duplicate if it has the same sender and client_msg_no and
-- was stored less than dedupe_ttl_s ago (docs/design-notes.md, "Lookup index").
--
-- KEYS: meta, log, badge, index, dispatch, members, deny, allow
-- ARGV: message (msgpack StoredMessage), red_dot (0|1), dedupe_ttl_s (0: the
--       client_msg_no is server-made, so no earlier send can have it),
--       id_field, id_bucket_hash, cmn_field, cmn_bucket_hash, digest,
--       new_epoch, now_ms, origin_conn, channel_type, channel_id, from_uid,
--       check_uid ('' = trusted: membership and lists are not checked),
--       retention (keep at most this many log entries; 0 = keep all)
-- Returns {1, seq, epoch} stored
--         | {2, seq, stored message, digest if the payload is the same else ''}
--         | {-19} banned | {-24} disbanded | {-3|-4|-13|-25} sender refused
local meta, log, badge, index, dispatch, members, deny, allow =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local message, red_dot, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local id_field, id_hash = ARGV[4], tonumber(ARGV[5])
local cmn_field, cmn_hash = ARGV[6], tonumber(ARGV[7])
local digest, new_epoch, now_ms, origin = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local channel_type, channel_id, from_uid = ARGV[12], ARGV[13], ARGV[14]
local check_uid = ARGV[15]
local retention = tonumber(ARGV[16] or '0') or 0

local flags = redis.call('HMGET', meta, 'ban', 'disband', 'epoch', 'seq')
local head = tonumber(flags[4] or '0') or 0

-- StoredMessage positions (msgpack array): 2 client_msg_no, 3 from_uid,
-- 6 timestamp_ms, 7 payload.
local prior_seq, prior_bucket
if ttl > 0 then prior_seq, prior_bucket = ix_find(index, head, cmn_field, cmn_hash) end
if prior_seq then
  local entry = redis.call('XRANGE', log, prior_seq .. '-0', prior_seq .. '-0')[1]
  if entry then
    local stored = entry[2][2]
    local old, new = mp_fields(stored, 7), mp_fields(message, 7)
    if old and new and old[2] == new[2] and old[3] == new[3]
        and old[6] >= tonumber(now_ms) - ttl * 1000 then
      -- Rewrite the same value: this makes the retry a write of this connection, so
      -- a WAITAOF that follows (strict durability) also covers the original write.
      redis.call('HSET', prior_bucket, cmn_field, prior_seq)
      local same = ''
      if old[7] == new[7] then same = digest end
      return {2, prior_seq, stored, same}
    end
  end
end

if flags[1] == '1' then return {-19} end
if flags[2] == '1' then return {-24} end
local refused = sender_refusal(meta, members, deny, allow, check_uid)
if refused ~= 0 then return {-refused} end

local epoch, seq = flags[3], head + 1
local fresh = not epoch
if fresh then
  -- A new channel, or its meta was lost: never reuse a seq the log still holds.
  epoch = new_epoch
  local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)[1]
  if last then seq = tonumber(string.match(last[1], '^(%d+)')) + 1 end
end
local seq_s = string.format('%d', seq)  -- once: see ix_bucket in index.lua
if fresh then
  redis.call('HSET', meta, 'epoch', epoch, 'created', now_ms, 'seq', seq_s,
    'last_ms', now_ms)
else
  redis.call('HSET', meta, 'seq', seq_s, 'last_ms', now_ms)
end
if retention > 0 then
  -- Exact trim: sync reports `truncated` with the first kept seq (DESIGN §6).
  redis.call('XADD', log, 'MAXLEN', retention, seq_s .. '-0', 'm', message)
else
  redis.call('XADD', log, seq_s .. '-0', 'm', message)
end
if red_dot == '1' then redis.call('SETBIT', badge, seq_s, 1) end
local k = ix_epoch(seq)
redis.call('HSET', ix_bucket(index, k, id_hash), id_field, seq_s)
redis.call('HSET', ix_bucket(index, k, cmn_hash), cmn_field, seq_s)
-- What the workers need for bookkeeping; they read the message itself from the
-- log only when someone online or a webhook wants it.
redis.call('XADD', dispatch, '*', 's', seq_s, 't', channel_type, 'c', channel_id,
  'f', from_uid, 'ts', now_ms, 'o', origin)
return {1, seq, epoch}
