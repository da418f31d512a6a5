"""The rate limiter's Lua scripts: an exact sliding window log per key.

A key is two Redis keys sharing a hash tag: a sorted set of admissions (member
``token:cost``, score its expiry in microseconds) and a counter of the cost they hold.
Time is Redis ``TIME`` unless the caller passes one (tests inject a clock).
"""

from __future__ import annotations

__all__ = ["DECIDE", "RELEASE"]

_NOW = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
"""

#: Decides a batch of requests, one after the other, each on all of its keys or none.
#: KEYS: (log, counter) per limited key of each request, in order. ARGV: now_us (-1:
#: Redis TIME), then one string per request: "n cost token" then "window_us capacity"
#: per key, space-separated (one argument and one reply per request keep the client's
#: encoding and parsing small). Returns {now, reply of request 1, ...}; a reply is
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
    local log, counter = KEYS[k + 2 * i - 1], KEYS[k + 2 * i]
    local gone = redis.call('ZRANGE', log, '-inf', now, 'BYSCORE')
    local u = tonumber(redis.call('GET', counter) or '0')
    if #gone > 0 then
      for _, m in ipairs(gone) do
        u = u - tonumber(string.sub(m, string.find(m, ':', 1, true) + 1))
      end
      redis.call('ZREMRANGEBYSCORE', log, '-inf', now)
      if u <= 0 then redis.call('DEL', counter) u = 0 else redis.call('SET', counter, u) end
    end
    used[i] = u
    if u + cost > tonumber(a[3 + 2 * i]) then ok = 0 end
  end
  local reply = {ok}
  for i = 1, n do
    local log, counter = KEYS[k + 2 * i - 1], KEYS[k + 2 * i]
    local window, capacity = tonumber(a[2 + 2 * i]), tonumber(a[3 + 2 * i])
    local u = used[i]
    if ok == 1 then
      local ms = math.ceil(window / 1000) + 1
      redis.call('ZADD', log, now + window, token .. ':' .. cost)
      redis.call('PEXPIRE', log, ms)
      redis.call('INCRBY', counter, cost)
      redis.call('PEXPIRE', counter, ms)
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
        local need, freed, start = u + cost - capacity, 0, 0
        while retry < 0 do
          local chunk = redis.call('ZRANGE', log, start, start + 15, 'WITHSCORES')
          if #chunk == 0 then break end
          for j = 1, #chunk, 2 do
            local m = chunk[j]
            freed = freed + tonumber(string.sub(m, string.find(m, ':', 1, true) + 1))
            if freed >= need then retry = tonumber(chunk[j + 1]) - now break end
          end
          start = start + 16
        end
      end
      reply[#reply + 1] = string.format('%d %d %d', capacity - u, reset, retry)
    end
  end
  out[#out + 1] = table.concat(reply, ' ')
  k = k + 2 * n
end
return out
"""
)

#: KEYS: (log, counter) per key. ARGV: now_us (-1: Redis TIME), member. Gives back the
#: reserved cost of every key whose admission has not left its window yet.
RELEASE = (
    _NOW
    + """
local m = ARGV[2]
local cost = tonumber(string.sub(m, string.find(m, ':', 1, true) + 1))
for i = 1, #KEYS / 2 do
  local log, counter = KEYS[2 * i - 1], KEYS[2 * i]
  local expiry = redis.call('ZSCORE', log, m)
  if expiry and tonumber(expiry) > now then
    redis.call('ZREM', log, m)
    if redis.call('DECRBY', counter, cost) <= 0 then redis.call('DEL', counter) end
  end
end
return 1
"""
)
