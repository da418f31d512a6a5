"""The rate limiter's Lua scripts: an exact sliding window log per key.

A limited key is one Redis sorted set: its admissions (member ``token:cost``, score the
admission's expiry in microseconds, always above 0) and the member ``#`` whose score is
minus the cost they hold (absent when none), so one call reads the sum and the expired
admissions together. Time is Redis ``TIME`` unless the caller passes one (tests inject
a clock; its time must not be negative).
"""

from __future__ import annotations

__all__ = ["DECIDE", "RELEASE"]

_NOW = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function cost_of(m)
  return tonumber(string.sub(m, string.find(m, ':', 1, true) + 1))
end
"""

#: Decides a batch of requests, one after the other, each on all of its keys or none.
#: KEYS: the log of each limited key of each request, in order. ARGV: now_us (-1: Redis
#: TIME), then one string per request: "n cost token" then "window_us capacity" per key,
#: space-separated (one argument and one reply per request keep the client's encoding
#: and parsing small). Returns {now, reply of request 1, ...}; a reply is
#: "admitted(1/0)" then "remaining reset_us retry_us(-1: never)" per key.
DECIDE = (
    _NOW
    + """
local out = {now}
local k = 0
for r = 2, #ARGV do
  local a = {}
  for w in string.gmatch(ARGV[r], '%S+') do a[#a + 1] = w end
  local n, cost, token = tonumber(a[1]), tonumber(a[2]), a[3]
  local used, ok = {}, 1
  for i = 1, n do
    local log = KEYS[k + i]
    -- the sum (score -used, below every admission) and the expired admissions
    local head = redis.call('ZRANGE', log, '-inf', now, 'BYSCORE', 'WITHSCORES')
    local u, gone = 0, 0
    for j = 1, #head, 2 do
      if head[j] == '#' then u = -tonumber(head[j + 1]) else gone = gone + cost_of(head[j]) end
    end
    if gone > 0 then
      redis.call('ZREMRANGEBYSCORE', log, 0, now)
      u = u - gone
      if u <= 0 then redis.call('ZREM', log, '#') u = 0 else redis.call('ZADD', log, -u, '#') end
    end
    used[i] = u
    if u + cost > tonumber(a[3 + 2 * i]) then ok = 0 end
  end
  local reply = {ok}
  for i = 1, n do
    local log = KEYS[k + i]
    local window, capacity = tonumber(a[2 + 2 * i]), tonumber(a[3 + 2 * i])
    local u = used[i]
    if ok == 1 then
      redis.call('ZADD', log, now + window, token .. ':' .. cost, -(u + cost), '#')
      redis.call('PEXPIRE', log, math.ceil(window / 1000) + 1)
      reply[#reply + 1] = string.format('%d %d 0', capacity - u - cost, window)
    else
      local reset, retry = 0, -1
      if u > 0 then
        local last = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
        reset = tonumber(last[2]) - now
      end
      if cost <= capacity and u + cost <= capacity then
        retry = 0
      elseif cost <= capacity then
        -- the admissions in expiry order (rank 0 is the sum)
        local need, freed, start = u + cost - capacity, 0, 1
        while retry < 0 do
          local chunk = redis.call('ZRANGE', log, start, start + 15, 'WITHSCORES')
          if #chunk == 0 then break end
          for j = 1, #chunk, 2 do
            freed = freed + cost_of(chunk[j])
            if freed >= need then retry = tonumber(chunk[j + 1]) - now break end
          end
          start = start + 16
        end
      end
      reply[#reply + 1] = string.format('%d %d %d', capacity - u, reset, retry)
    end
  end
  out[#out + 1] = table.concat(reply, ' ')
  k = k + n
end
return out
"""
)

#: KEYS: the log of each key. ARGV: now_us (-1: Redis TIME), member. Gives back the
#: reserved cost of every key whose admission has not left its window yet.
RELEASE = (
    _NOW
    + """
local m = ARGV[2]
local cost = cost_of(m)
for i = 1, #KEYS do
  local log = KEYS[i]
  local expiry = redis.call('ZSCORE', log, m)
  if expiry and tonumber(expiry) > now then
    redis.call('ZREM', log, m)
    local u = -tonumber(redis.call('ZSCORE', log, '#') or '0') - cost
    if u <= 0 then redis.call('ZREM', log, '#') else redis.call('ZADD', log, -u, '#') end
  end
end
return 1
"""
)
