"""The shared circuit breaker's state machine, one Lua script (the DefaultCircuitBreaker's
rules, step for step, on a Redis hash shared by every process using the breaker's name).

ARGV: now_us (-1: Redis TIME), op (admit, success, failure, excluded, cancelled, reset,
read), the call's epoch, slow (0/1), reset first (0/1), then the settings:
failure_threshold, reset_us, permits, failure_rate (-1: off), window, minimum,
slow detection (0/1), slow_rate, max_half_open_us (-1: off).

Returns {admitted (1/0), wait_us, epoch, seq, now, then the state (see ``_FIELDS``),
then (epoch, old, new) per transition made}.
"""

from __future__ import annotations

__all__ = ["BREAKER", "FIELDS"]

#: The state fields returned, in order (states: 0 closed, 1 open, 2 half-open).
FIELDS = (
    "st", "ep", "oa", "ha", "cf", "hi", "hs", "hsl", "rl", "rf", "rs",
    "ok", "fail", "slow", "excl", "canc", "rej",
)  # fmt: skip

BREAKER = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local op, call_epoch, slow, reset_first = ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5]
local threshold, reset_us, permits = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local frate, wsize, minimum = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local slow_on, srate, mho = ARGV[12] == '1', tonumber(ARGV[13]), tonumber(ARGV[14])
local windowed = frate >= 0 or slow_on

local names = {'st','ep','oa','ha','cf','hi','hs','hsl','rf','rs','ok','fail','slow','excl',
               'canc','rej','ring'}
local raw = redis.call('HMGET', KEYS[1], unpack(names))
local s = {}
for i = 1, #names - 1 do s[names[i]] = tonumber(raw[i]) or 0 end
local ring = raw[#names] or ''
local trans = {}

local function clear()
  s.cf, s.hi, s.hs, s.hsl, s.rf, s.rs = 0, 0, 0, 0, 0, 0
  ring = ''
end
local function transition(new, at)
  local old = s.st
  s.st = new
  s.ep = s.ep + 1
  clear()
  if new == 1 then s.oa = at elseif new == 2 then s.ha = at end
  trans[#trans + 1] = s.ep
  trans[#trans + 1] = old
  trans[#trans + 1] = new
end
local function tick()
  while true do
    if s.st == 1 and now >= s.oa + reset_us then
      transition(2, now)
    elseif s.st == 2 and mho >= 0 and now >= s.ha + mho then
      transition(1, s.ha + mho)
    else
      return
    end
  end
end
local function wait()
  if s.st == 1 then return math.max(0, s.oa + reset_us - now) end
  if s.st == 2 and s.hi + s.hs >= permits then
    if mho >= 0 then return math.max(0, s.ha + mho - now) end
    return reset_us
  end
  return 0
end
local function record(outcome)
  ring = ring .. outcome
  local n = #ring
  if n > wsize then
    local evicted = tonumber(string.sub(ring, 1, 1))
    ring = string.sub(ring, 2)
    n = n - 1
    s.rf = s.rf - (evicted % 2)
    s.rs = s.rs - math.floor(evicted / 2)
  end
  local o = tonumber(outcome)
  s.rf = s.rf + (o % 2)
  s.rs = s.rs + math.floor(o / 2)
  if o == 0 and n ~= minimum then return end
  if n < minimum then return end
  if (frate >= 0 and 100 * s.rf >= frate * n) or (slow_on and 100 * s.rs >= srate * n) then
    transition(1, now)
  end
end
local function reset()
  if s.st == 0 then
    s.ep = s.ep + 1
    clear()
  else
    transition(0, now)
  end
end

if reset_first == '1' then reset() end
local admitted, waited, epoch = 1, 0, call_epoch
if op == 'admit' then
  tick()
  epoch = s.ep
  if s.st == 2 and s.hi + s.hs < permits then
    s.hi = s.hi + 1
  elseif s.st ~= 0 then
    admitted = 0
    s.rej = s.rej + 1
    waited = wait()
  end
elseif op == 'success' then
  s.ok = s.ok + 1
  if slow then s.slow = s.slow + 1 end
  if call_epoch == s.ep and s.st == 0 then
    s.cf = 0
    if windowed then record(slow and '2' or '0') end
  else
    tick()
    if call_epoch == s.ep then
      s.hi = s.hi - 1
      s.hs = s.hs + 1
      if slow then s.hsl = s.hsl + 1 end
      if s.hs >= permits then
        local reopen = slow_on and 100 * s.hsl >= srate * s.hs
        transition(reopen and 1 or 0, now)
      end
    end
  end
elseif op == 'failure' then
  s.fail = s.fail + 1
  if slow then s.slow = s.slow + 1 end
  if s.st ~= 0 then tick() end
  if call_epoch == s.ep then
    if s.st == 2 then
      transition(1, now)
    else
      s.cf = s.cf + 1
      if s.cf >= threshold then
        transition(1, now)
      elseif windowed then
        record(slow and '3' or '1')
      end
    end
  end
elseif op == 'excluded' or op == 'cancelled' then
  if op == 'excluded' then s.excl = s.excl + 1 else s.canc = s.canc + 1 end
  if s.st ~= 0 then tick() end
  if call_epoch == s.ep and s.st == 2 then s.hi = s.hi - 1 end
elseif op == 'reset' then
  -- done above (reset_first)
else
  tick()
end

local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local fields = {}
for i = 1, #names - 1 do
  fields[#fields + 1] = names[i]
  fields[#fields + 1] = s[names[i]]
end
fields[#fields + 1] = 'ring'
fields[#fields + 1] = ring
redis.call('HSET', KEYS[1], unpack(fields))
local out = {admitted, waited, epoch, seq, now, s.st, s.ep, s.oa, s.ha, s.cf, s.hi, s.hs, s.hsl,
             #ring, s.rf, s.rs, s.ok, s.fail, s.slow, s.excl, s.canc, s.rej}
for i = 1, #trans do out[#out + 1] = trans[i] end
return out
"""
