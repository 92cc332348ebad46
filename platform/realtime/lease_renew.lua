-- Extends the leases of one process's open sockets. Loaded by realtime/leases.py.
--
-- KEYS[i]     a user's lease set (see lease_acquire.lua)
-- ARGV[1]     the lease's length in milliseconds
-- ARGV[i + 1] the lease id held in KEYS[i] (a key may repeat: one user, several sockets)
-- returns     how many leases were renewed
--
-- A lease that is missing is added back, whatever the count: its socket is open (admitted while
-- Redis was unreachable, or Redis lost its data), so it must count again; the user may sit above
-- the limit until sockets close, and new ones are refused meanwhile. The caller never renews a
-- lease it has released (realtime/sockets.py orders the two).

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease_ms = tonumber(ARGV[1])

for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease_ms, ARGV[i + 1])
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, newest[2])
end
return #KEYS
