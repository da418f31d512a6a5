"""The job queue's Lua scripts: every step that checks and writes is one script.

Keys, under the prefix ``P`` (ARGV[1]): ``P:job:<id>`` (hash), ``P:line:<session>``
(list of the session's unfinished job ids, head first), ``P:ready`` (stream, consumer
group ``workers``: one entry per session whose head may run), ``P:delayed`` (sorted set
of sessions waiting out a backoff, score ``available_at``), ``P:dead`` (stream of dead
letters), ``P:key:<key>`` (idempotency key to job id), ``P:finished`` (list of finished
job ids, newest first, trimmed to ``keep``).

A running job's lease is its ``P:ready`` entry in the group's pending entries list. Its
delivery time is set (XCLAIM ... TIME) to the lease's expiry on the queue clock minus a
constant ``shift``, so XAUTOCLAIM with a min-idle-time of ``server_now + shift - now``
claims exactly the entries whose lease has run out on the queue clock (a few ms of
slack for the server clock ticking inside the script; the job hash's exact
``expires_at`` decides, and an entry claimed early is handed back untouched).

Common ARGV: prefix, now (queue clock, epoch seconds), max_attempts, keep, waits (the
backoff after attempt 1, 2, ... comma-separated, the last one repeating), then the
script's own arguments.
"""

from __future__ import annotations

__all__ = ["COMPLETE", "ENQUEUE", "EXPIRE", "FAIL", "LEASE", "RELEASE", "RENEW"]

_COMMON = r"""
local P = ARGV[1]
local now = tonumber(ARGV[2])
local max_attempts = tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
local waits = {}
for w in string.gmatch(ARGV[5], '[^,]+') do waits[#waits + 1] = tonumber(w) end
local READY, DEAD, DELAYED, GROUP = P .. ':ready', P .. ':dead', P .. ':delayed', 'workers'

local function num(x) return string.format('%.17g', x) end
local function jobkey(id) return P .. ':job:' .. id end

local function ready(session)
  redis.call('XADD', READY, '*', 's', session)
end

local function drop_entry(entry)
  if entry and entry ~= '' then
    redis.call('XACK', READY, GROUP, entry)
    redis.call('XDEL', READY, entry)
  end
end

local function forget(id)
  local jk = jobkey(id)
  local f = redis.call('HMGET', jk, 'key', 'dead_entry')
  if f[1] and f[1] ~= '' and redis.call('GET', P .. ':key:' .. f[1]) == id then
    redis.call('DEL', P .. ':key:' .. f[1])
  end
  if f[2] and f[2] ~= '' then redis.call('XDEL', DEAD, f[2]) end
  redis.call('DEL', jk)
end

local function finish(id, session, status, err)
  local jk = jobkey(id)
  drop_entry(redis.call('HGET', jk, 'entry'))
  redis.call('HSET', jk, 'status', status, 'finished_at', num(now), 'worker', '',
    'token', '', 'entry', '', 'expires_at', '')
  if err then redis.call('HSET', jk, 'error', err) end
  if status == 'dead' then
    local e = redis.call('XADD', DEAD, '*', 'job', id, 'error', err)
    redis.call('HSET', jk, 'dead_entry', e)
  end
  local line = P .. ':line:' .. session
  redis.call('LPOP', line)
  if redis.call('LLEN', line) > 0 then ready(session) end
  redis.call('LPUSH', P .. ':finished', id)
  while redis.call('LLEN', P .. ':finished') > keep do
    forget(redis.call('RPOP', P .. ':finished'))
  end
end

-- a failed attempt: back in line after the backoff, or to the dead letters
local function failed(id, session, err, retry_after, retry)
  local jk = jobkey(id)
  local attempts = tonumber(redis.call('HGET', jk, 'attempts'))
  if not retry or attempts >= max_attempts then
    finish(id, session, 'dead', err)
    return
  end
  local wait = waits[math.min(attempts, #waits)]
  if retry_after > wait then wait = retry_after end
  local at = now + wait
  drop_entry(redis.call('HGET', jk, 'entry'))
  redis.call('HSET', jk, 'status', 'queued', 'available_at', num(at), 'error', err,
    'worker', '', 'token', '', 'entry', '', 'expires_at', '')
  redis.call('ZADD', DELAYED, at, session)
end

-- the job a lease token holds, or nil (the lease was lost)
local function held(id, token)
  local jk = jobkey(id)
  local f = redis.call('HMGET', jk, 'status', 'token', 'session')
  if f[1] ~= 'running' or f[2] ~= token then return nil end
  return f[3]
end
"""

_RECLAIM = r"""
-- fail every running job whose lease ran out on the queue clock; their ids
local function reclaim(consumer, shift, slack)
  local t = redis.call('TIME')
  local server_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local min_idle = server_ms + shift - math.floor(now * 1000) - slack
  if min_idle < 0 then min_idle = 0 end
  local out, cursor = {}, '0-0'
  repeat
    local r = redis.call('XAUTOCLAIM', READY, GROUP, consumer, min_idle, cursor, 'COUNT', 100)
    cursor = r[1]
    for _, item in ipairs(r[2]) do
      local entry, session = item[1], item[2][2]
      local id = redis.call('LINDEX', P .. ':line:' .. session, 0)
      local f = id and redis.call('HMGET', jobkey(id), 'entry', 'expires_at', 'worker')
      if not f or f[1] ~= entry then
        drop_entry(entry)  -- an entry no running job owns
      elseif tonumber(f[2]) <= now then
        failed(id, session, 'lease expired: worker ' .. f[3] .. ' stopped renewing it', 0, true)
        out[#out + 1] = id
      else  -- claimed within the slack: give it back as it was
        redis.call('XCLAIM', READY, GROUP, f[3], 0, entry,
          'TIME', math.floor(tonumber(f[2]) * 1000) - shift, 'JUSTID')
      end
    end
  until cursor == '0-0'
  return out
end
"""

#: ARGV[6..]: id, session, payload (JSON), key ('' for none). Returns {created (1/0),
#: the job's fields}: with a key already used, the job first enqueued with it.
ENQUEUE = (
    _COMMON
    + r"""
local id, session, payload, key = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
if key ~= '' then
  local existing = redis.call('GET', P .. ':key:' .. key)
  if existing then return {0, redis.call('HGETALL', jobkey(existing))} end
  redis.call('SET', P .. ':key:' .. key, id)
end
redis.call('HSET', jobkey(id), 'id', id, 'session', session, 'payload', payload, 'key', key,
  'status', 'queued', 'attempts', 0, 'enqueued_at', num(now), 'available_at', num(now))
local line = P .. ':line:' .. session
if redis.call('RPUSH', line, id) == 1 then ready(session) end
return {1, redis.call('HGETALL', jobkey(id))}
"""
)

#: ARGV[6..]: worker, token, lease_timeout, shift_ms, slack_ms. Reclaims expired
#: leases, moves sessions past their backoff to ``ready``, then leases one job.
#: Returns {job fields or {}, last id of ``ready``, earliest backoff end or ''}.
LEASE = (
    _COMMON
    + _RECLAIM
    + r"""
local worker, token, lease_timeout = ARGV[6], ARGV[7], tonumber(ARGV[8])
local shift, slack = tonumber(ARGV[9]), tonumber(ARGV[10])
reclaim(worker, shift, slack)
for _, session in ipairs(redis.call('ZRANGEBYSCORE', DELAYED, '-inf', num(now))) do
  redis.call('ZREM', DELAYED, session)
  ready(session)
end
local job = {}
for _ = 1, 10 do
  local r = redis.call('XREADGROUP', 'GROUP', GROUP, worker, 'COUNT', 1, 'STREAMS', READY, '>')
  if not r then break end
  local entry, session = r[1][2][1][1], r[1][2][1][2][2]
  local id = redis.call('LINDEX', P .. ':line:' .. session, 0)
  local jk = id and jobkey(id)
  if jk and redis.call('HGET', jk, 'status') == 'queued' then
    local expires = now + lease_timeout
    redis.call('HINCRBY', jk, 'attempts', 1)
    redis.call('HSET', jk, 'status', 'running', 'worker', worker, 'token', token,
      'entry', entry, 'expires_at', num(expires))
    redis.call('XCLAIM', READY, GROUP, worker, 0, entry,
      'TIME', math.floor(expires * 1000) - shift, 'JUSTID')
    job = redis.call('HGETALL', jk)
    break
  end
  drop_entry(entry)  -- stale: nothing of that session can run
end
local last = ''
local info = redis.call('XINFO', 'STREAM', READY)
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
local next_due = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')[2] or ''
return {job, last, next_due}
"""
)

#: ARGV[6..]: shift_ms, slack_ms. Returns the fields of each job whose lease ran out.
EXPIRE = (
    _COMMON
    + _RECLAIM
    + r"""
local out = {}
for _, id in ipairs(reclaim('janitor', tonumber(ARGV[6]), tonumber(ARGV[7]))) do
  out[#out + 1] = redis.call('HGETALL', jobkey(id))
end
return out
"""
)

_HELD = r"""
local id, token = ARGV[6], ARGV[7]
local session = held(id, token)
if not session then
  return {0, redis.call('HGET', jobkey(id), 'status') or 'forgotten'}
end
"""

#: ARGV[6..]: id, token, lease_timeout, shift_ms. Returns {1, fields} or {0, status}.
RENEW = (
    _COMMON
    + _HELD
    + r"""
local expires = now + tonumber(ARGV[8])
local f = redis.call('HMGET', jobkey(id), 'entry', 'worker')
redis.call('HSET', jobkey(id), 'expires_at', num(expires))
redis.call('XCLAIM', READY, GROUP, f[2], 0, f[1],
  'TIME', math.floor(expires * 1000) - tonumber(ARGV[9]), 'JUSTID')
return {1, redis.call('HGETALL', jobkey(id))}
"""
)

#: ARGV[6..]: id, token, result (JSON). Returns {1, fields} or {0, status}.
COMPLETE = (
    _COMMON
    + _HELD
    + r"""
redis.call('HSET', jobkey(id), 'result', ARGV[8])
finish(id, session, 'completed', nil)
return {1, redis.call('HGETALL', jobkey(id))}
"""
)

#: ARGV[6..]: id, token, error, retry_after (seconds), retry (1/0).
#: Returns {1, fields} or {0, status}.
FAIL = (
    _COMMON
    + _HELD
    + r"""
failed(id, session, ARGV[8], tonumber(ARGV[9]), ARGV[10] == '1')
return {1, redis.call('HGETALL', jobkey(id))}
"""
)

#: ARGV[6..]: id, token. Returns {1, fields} or {0, status}.
RELEASE = (
    _COMMON
    + _HELD
    + r"""
local jk = jobkey(id)
drop_entry(redis.call('HGET', jk, 'entry'))
redis.call('HINCRBY', jk, 'attempts', -1)
redis.call('HSET', jk, 'status', 'queued', 'available_at', num(now), 'worker', '',
  'token', '', 'entry', '', 'expires_at', '')
ready(session)
return {1, redis.call('HGETALL', jk)}
"""
)
