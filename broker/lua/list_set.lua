-- Replace a channel's blacklist or whitelist with the given uids (maybe none).
--
-- KEYS: list
-- ARGV: uid...
-- Returns the number of uids now on the list
local list = KEYS[1]
redis.call('DEL', list)
for i = 1, #ARGV do redis.call('SADD', list, ARGV[i]) end
return redis.call('SCARD', list)
