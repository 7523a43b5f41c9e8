-- May this sender send into this channel now? For messages that are not stored
-- (transient, command): the checks append.lua makes, without writing anything.
--
-- KEYS: meta, members, deny, allow
-- ARGV: check_uid ('' = trusted: only ban/disband apply)
-- Returns 0 allowed | -reason (19 ban, 24 disband, 3, 4, 13, 25)
local meta, members, deny, allow = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local flags = redis.call('HMGET', meta, 'ban', 'disband')
if flags[1] == '1' then return -19 end
if flags[2] == '1' then return -24 end
return -sender_refusal(meta, members, deny, allow, ARGV[1])
