-- mcpgate cluster-scope rate limits and quotas (policies/src/limits/cluster.rs).
-- One call decides every rule a request matched, all or nothing: either every key takes its cost,
-- or none does and the request is refused. Time is the Redis server's (TIME), so the gateways'
-- clocks never disagree about a rate.
--
-- KEYS[i]: the key of charge i. ARGV, 4 per charge:
--   'r', emission interval (microseconds), burst, cost      -- GCRA: the key holds the TAT (us)
--   'q', limit, period end (Unix ms), cost                  -- quota: the key holds the count
-- Returns {all_allowed (0/1), then per charge: allowed, remaining, retry_after_ms, reset_ms}.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local res = {1}
local writes = {}
for i = 1, #KEYS do
  local j = (i - 1) * 4
  local kind = ARGV[j + 1]
  local a = tonumber(ARGV[j + 2])
  local b = tonumber(ARGV[j + 3])
  local cost = tonumber(ARGV[j + 4])
  local stored = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if kind == 'r' then
    local tat = stored
    if tat < now_us then tat = now_us end
    local new_tat = tat + a * cost
    local tolerance = a * b
    if new_tat - now_us <= tolerance then
      writes[#writes + 1] = {i, 'r', new_tat, new_tat - now_us}
      res[#res + 1] = 1
      res[#res + 1] = math.floor((tolerance - (new_tat - now_us)) / a)
      res[#res + 1] = 0
      res[#res + 1] = math.ceil((new_tat - now_us) / 1000)
    else
      res[1] = 0
      res[#res + 1] = 0
      res[#res + 1] = math.floor(math.max(tolerance - (tat - now_us), 0) / a)
      res[#res + 1] = math.ceil((new_tat - tolerance - now_us) / 1000)
      res[#res + 1] = math.ceil((tat - now_us) / 1000)
    end
  else
    local reset = b - now_ms
    if reset < 0 then reset = 0 end
    if stored + cost <= a then
      writes[#writes + 1] = {i, 'q', cost, b}
      res[#res + 1] = 1
      res[#res + 1] = a - stored - cost
      res[#res + 1] = 0
      res[#res + 1] = reset
    else
      res[1] = 0
      res[#res + 1] = 0
      res[#res + 1] = math.max(a - stored, 0)
      res[#res + 1] = math.max(reset, 1)
      res[#res + 1] = reset
    end
  end
end
if res[1] == 1 then
  for _, w in ipairs(writes) do
    if w[2] == 'r' then
      -- Expires once the key is back to its full burst: nothing is lost by forgetting it.
      redis.call('SET', KEYS[w[1]], string.format('%.0f', w[3]), 'PX', math.ceil(w[4] / 1000) + 1000)
    else
      redis.call('INCRBY', KEYS[w[1]], w[3])
      -- Kept a minute past the period's end (the period is in the key's name).
      redis.call('PEXPIREAT', KEYS[w[1]], string.format('%.0f', w[4] + 60000))
    end
  end
end
return res
