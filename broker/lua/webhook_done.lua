-- A webhook job was delivered (any 2xx): forget it.
--
-- KEYS: jobs, due, attempts
-- ARGV: delivery id
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
