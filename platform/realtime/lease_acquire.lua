-- One socket's lease in the set of its user's open sockets, if the user is below the limit.
-- Loaded by realtime/leases.py; see its docstring for why leases and not a counter.
--
-- KEYS[1]   the user's lease set (a sorted set): member = a socket's lease id, score = the
--           lease's expiry in milliseconds of Redis server time
-- ARGV[1]   the new socket's lease id
-- ARGV[2]   the limit: leases one user may hold at once
-- ARGV[3]   the lease's length in milliseconds
-- returns   1 when the lease was added (or already held), 0 when the user is at the limit
--
-- Expired leases (their process crashed or lost Redis for longer than a lease) are dropped
-- first, so they never count. Dropping, counting and adding happen in this one script: two
-- processes admitting the same user's sockets at the same moment cannot both take the last
-- place. Time comes from Redis (TIME), so pods with skewed clocks agree on every expiry.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease_ms = tonumber(ARGV[3])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[1])
-- The key itself goes when its last lease would: nothing is left behind by a crashed process.
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], newest[2])
return 1
