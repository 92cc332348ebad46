-- Records one failed login against a failure record; loaded by apikit/login_guard.py.
--
-- KEYS[1]   the record: a hash with `n` (failures so far) and `at` (microseconds of Redis time
--           before which the next attempt is refused; throttle.lua reads it)
-- ARGV[1]   failures allowed before any delay (past them, the n-th failure delays the next
--           attempt by 2^(n - ARGV[1]) seconds)
-- ARGV[2]   the longest delay, in microseconds
-- ARGV[3]   how long the record is kept after its latest failure, in milliseconds
-- returns   the delay this failure imposed, in microseconds (0 while under the allowance)

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local free = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])

local failures = redis.call('HINCRBY', KEYS[1], 'n', 1)
local delay = 0
if failures >= free then
  -- 2^k overflows to inf for huge k, and math.min keeps the cap: no special case needed.
  delay = math.min(1000000 * 2 ^ (failures - free), cap)
end
redis.call('HSET', KEYS[1], 'at', string.format('%.0f', now + delay))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return string.format('%.0f', delay)
