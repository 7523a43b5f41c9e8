-- Remove a user's conversation entirely (the user left the channel).
--
-- KEYS: conv, recent
-- ARGV: field
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
