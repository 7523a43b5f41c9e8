-- Shared prelude (prepended by scripts.py): the same-channel checks of a client
-- sender, so append.lua and permit.lua refuse exactly the same senders.
-- Returns a WuKongIM reason code, or 0 when the sender may send.
local function sender_refusal(meta, members, deny, allow, uid)
  if uid == '' then return 0 end  -- trusted sender (manager token, system uid)
  if redis.call('SISMEMBER', deny, uid) == 1 then return 4 end
  if redis.call('SISMEMBER', members, uid) == 0 then return 3 end
  if redis.call('SCARD', allow) > 0 and redis.call('SISMEMBER', allow, uid) == 0 then
    return 13
  end
  if redis.call('HGET', meta, 'send_ban') == '1' then return 25 end
  return 0
end
