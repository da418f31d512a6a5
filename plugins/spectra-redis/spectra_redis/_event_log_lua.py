"""The event log's Lua scripts: one run is a stream and a small hash sharing a hash tag.

- ``<prefix>:evlog:{<run_id>}:s``, a stream: the event of seq ``n`` has the id ``n-0``
  and the fields ``t`` (its type) and ``j`` (its JSON). ``XADD ... MAXLEN ~ max_events``
  keeps at least the last ``max_events`` (whole radix-tree nodes are dropped, cheaply).
- ``<prefix>:evlog:{<run_id>}:m``, a hash: ``last`` (the last seq, 0 for an opened run)
  and, once ``run_end`` is logged, ``end``: the wall-clock milliseconds (of the writer's
  clock) at which the run's retention ends.

The log a reader sees is exact whatever Redis trimmed: seqs are contiguous, so the kept
window is ``max(1, last - max_events + 1) .. last``, and anything before it is a gap.
- ``<prefix>:evsess:{<session_id>}:s`` and ``:m``: a session's runs, in the same shape
  (READ reads them too): the run opened n-th on the session is the entry ``n-0`` with
  ``t`` = ``run`` and ``j`` = its run id; the hash holds ``last`` = n and ``run``, the
  latest run id (so opening a run twice adds it once).

A run whose ``end`` has passed is treated as gone before Redis deletes its keys (their
TTL is the retention plus a grace period).
"""

from __future__ import annotations

__all__ = ["APPEND", "OPEN", "READ", "SESSION_ADD"]

#: KEYS: stream, meta. ARGV: now_ms, abandon_ms (0: never). Creates the run if needed
#: (an expired one is dropped first). Returns 1.
OPEN = """
local dl = redis.call('HGET', KEYS[2], 'end')
if dl and tonumber(dl) <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1], KEYS[2]) end
if redis.call('HSETNX', KEYS[2], 'last', 0) == 1 and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
"""

#: KEYS: stream, meta. ARGV: seq, type, json, max_events, terminal (1/0), now_ms,
#: end_ms (now + retention), ttl_ms (of an ended run's keys), abandon_ms (0: never).
#: Returns {1, last} when logged, {-1, last} when the run has ended, {-2, last} when
#: seq is not last + 1. The checks and the XADD are one atomic step.
APPEND = """
local seq = tonumber(ARGV[1])
local m = redis.call('HMGET', KEYS[2], 'last', 'end')
local last = tonumber(m[1]) or 0
if m[2] then
  if tonumber(m[2]) > tonumber(ARGV[6]) then return {-1, last} end
  redis.call('DEL', KEYS[1], KEYS[2])
  last = 0
end
if seq ~= last + 1 then return {-2, last} end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], ARGV[1] .. '-0', 't', ARGV[2], 'j', ARGV[3])
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[2], 'last', seq, 'end', ARGV[7])
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
else
  redis.call('HSET', KEYS[2], 'last', seq)
  if tonumber(ARGV[9]) > 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[9])
    redis.call('PEXPIRE', KEYS[2], ARGV[9])
  end
end
return {1, last}
"""

#: KEYS: stream, meta. ARGV: after (-1: before the first kept event), count, now_ms,
#: max_events. Returns {0} for an unknown or expired run, {2, last} when ``after`` is
#: ahead of the log, {3, last, first} when the events after ``after`` are gone, else
#: {1, last, ended (1/0), after, [up to count entries after it]}.
READ = """
local m = redis.call('HMGET', KEYS[2], 'last', 'end')
if not m[1] then return {0} end
if m[2] and tonumber(m[2]) <= tonumber(ARGV[3]) then return {0} end
local last = tonumber(m[1])
local first = math.max(1, last - tonumber(ARGV[4]) + 1)
local after = tonumber(ARGV[1])
if after < 0 then after = first - 1 end
if after > last then return {2, last} end
if after + 1 < first then return {3, last, first} end
local ended = 0
if m[2] then ended = 1 end
if after == last then return {1, last, ended, after, {}} end
local entries = redis.call('XRANGE', KEYS[1], '(' .. after .. '-0', '+', 'COUNT', ARGV[2])
return {1, last, ended, after, entries}
"""

#: KEYS: session stream, session meta. ARGV: run_id, max_runs, ttl_ms (0: keep).
#: Returns the run's place n in the session, or 0 when it is already the latest run.
SESSION_ADD = """
if redis.call('HGET', KEYS[2], 'run') == ARGV[1] then return 0 end
local n = redis.call('HINCRBY', KEYS[2], 'last', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], n .. '-0', 't', 'run', 'j', ARGV[1])
redis.call('HSET', KEYS[2], 'run', ARGV[1])
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
return n
"""
