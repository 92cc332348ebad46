-- GCRA (generic cell rate algorithm) over several buckets, all or nothing, plus failure delays.
-- Loaded by apikit/throttling.py; see its docstring for why GCRA and why one script.
--
-- ARGV[1]          n: KEYS[1..n] are rate buckets, KEYS[n+1..] are failure records
-- KEYS[i], i <= n  bucket key; its value is the bucket's theoretical arrival time (TAT) in
--                  microseconds of Redis server time
-- ARGV[2i]         the bucket's limit: requests allowed per period (0 refuses everything)
-- ARGV[2i+1]       the bucket's period in microseconds
-- KEYS[i], i > n   a failure record (a hash written by login_failure.lua): its field `at` is
--                  the moment before which an attempt is refused; it is only read here
-- returns          {1, 0} when every bucket and record allows (and every bucket was charged),
--                  else {0, wait}: microseconds until every refusing one would allow a request;
--                  nothing is charged then, so a refused request costs the caller nothing.
--
-- Time comes from the Redis server (TIME), never from the callers: every web worker on every
-- host shares one clock, so skewed hosts cannot over- or under-charge a bucket.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local rate_count = tonumber(ARGV[1])

local new_tats = {}
local wait = 0

for i = 1, rate_count do
  local limit = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  if limit <= 0 then
    wait = math.max(wait, period)
  else
    -- One request "costs" interval microseconds of the bucket. Flooring keeps it an integer
    -- (TATs stay exact in a double) and the burst exactly `limit`: with burst = limit * interval,
    -- the k-th back-to-back request is allowed iff k * interval <= limit * interval.
    local interval = math.max(1, math.floor(period / limit))
    local burst = interval * limit
    local tat = tonumber(redis.call('GET', KEYS[i])) or 0
    if tat < now then
      tat = now
    end
    local new_tat = tat + interval
    local allow_at = new_tat - burst
    if allow_at > now then
      wait = math.max(wait, allow_at - now)
    end
    new_tats[i] = new_tat
  end
end

for i = rate_count + 1, #KEYS do
  local allow_at = tonumber(redis.call('HGET', KEYS[i], 'at')) or 0
  if allow_at > now then
    wait = math.max(wait, allow_at - now)
  end
end

if wait > 0 then
  return {0, wait}
end

for i = 1, rate_count do
  -- A TAT in the past means "empty bucket", so the key can expire exactly when it gets there.
  local ttl_ms = math.ceil((new_tats[i] - now) / 1000)
  redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', ttl_ms)
end
return {1, 0}
