"""The store's Lua scripts: each runs atomically on the keys of one session.

A session lives in three keys sharing the session id as hash tag (so on Redis Cluster
they are in one slot): ``h`` a hash (``v`` version, ``c`` the incarnation, or created_at
for sessions saved before incarnations, ``h`` the header's JSON, ``n`` entry count,
``leaf``, ``us`` updated_at in microseconds, ``user``, ``tenant``), ``e`` a list of the
entries' JSON in order, and ``t`` a hash from entry id to
``seq \\t parent_id \\t kind \\t first_kept_entry_id`` that bounded loads walk.
"""

from __future__ import annotations

__all__ = ["DELETE", "LOAD", "LOAD_BRANCH", "WRITE"]

_EXPIRE = """
local function expire(ttl)
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
end
"""

#: ARGV: mode ('save' checks the version and appends; 'put' replaces an older or missing
#: copy, to warm the cache), expected, version, created_at, header json, updated_us,
#: user, tenant, leaf, ttl_ms, then 5 values per entry: id, parent, kind, first_kept, json.
#: Returns {'ok', version}, {'conflict', stored version or ''}, {'recreated', version},
#: {'dup', entry id} or {'stale', stored version}.
WRITE = (
    _EXPIRE
    + """
local mode, expected, version = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl = tonumber(ARGV[10])
local stored = redis.call('HMGET', KEYS[1], 'v', 'c', 'n')
local count = 0
if mode == 'put' then
  if stored[1] and tonumber(stored[1]) >= version then
    expire(ttl)
    return {'stale', stored[1]}
  end
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
else
  if expected == 0 then
    if stored[1] then return {'conflict', stored[1]} end
  else
    if not stored[1] then return {'conflict', ''} end
    if stored[2] ~= ARGV[4] then return {'recreated', stored[1]} end
    if tonumber(stored[1]) ~= expected then return {'conflict', stored[1]} end
    count = tonumber(stored[3])
    for i = 11, #ARGV, 5 do
      if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then return {'dup', ARGV[i]} end
    end
  end
end
local batch, nodes = {}, {}
for i = 11, #ARGV, 5 do
  batch[#batch + 1] = ARGV[i + 4]
  nodes[#nodes + 1] = ARGV[i]
  nodes[#nodes + 1] = count .. '\\t' .. ARGV[i + 1] .. '\\t' .. ARGV[i + 2] .. '\\t' .. ARGV[i + 3]
  count = count + 1
  if #batch >= 1000 then
    redis.call('RPUSH', KEYS[2], unpack(batch))
    redis.call('HSET', KEYS[3], unpack(nodes))
    batch, nodes = {}, {}
  end
end
if #batch > 0 then
  redis.call('RPUSH', KEYS[2], unpack(batch))
  redis.call('HSET', KEYS[3], unpack(nodes))
end
redis.call('HSET', KEYS[1], 'v', version, 'c', ARGV[4], 'h', ARGV[5], 'n', count,
  'us', ARGV[6], 'user', ARGV[7], 'tenant', ARGV[8], 'leaf', ARGV[9])
expire(ttl)
return {'ok', version}
"""
)

#: ARGV: ttl_ms. Returns false (missing) or {header json, entry json...}.
LOAD = (
    _EXPIRE
    + """
local h = redis.call('HGET', KEYS[1], 'h')
if not h then return false end
expire(tonumber(ARGV[1]))
-- one bulk string, not one reply element per entry: the client parses two elements
return {h, table.concat(redis.call('LRANGE', KEYS[2], 0, -1), '\\n')}
"""
)

#: ARGV: ttl_ms, tail (0: no limit). Walks the active branch up from the leaf and
#: returns false (missing) or {header json, total entries, model change json or '',
#: the entries' json lines} for the window that spectra_core.tree.active_branch_window defines.
LOAD_BRANCH = (
    _EXPIRE
    + """
local h = redis.call('HMGET', KEYS[1], 'h', 'n', 'leaf')
if not h[1] then return false end
expire(tonumber(ARGV[1]))
local tail = tonumber(ARGV[2])
local up = {}
local id = h[3]
while id and id ~= '' do
  local rec = redis.call('HGET', KEYS[3], id)
  if not rec then break end
  local a = string.find(rec, '\\t', 1, true)
  local b = string.find(rec, '\\t', a + 1, true)
  local c = string.find(rec, '\\t', b + 1, true)
  up[#up + 1] = {string.sub(rec, 1, a - 1), string.sub(rec, b + 1, c - 1),
                 string.sub(rec, c + 1), id}
  id = string.sub(rec, a + 1, b - 1)
end
local n = #up
local path = {}
for i = n, 1, -1 do path[#path + 1] = up[i] end
local start = 1
for i = n, 1, -1 do
  if path[i][2] == 'compaction' then
    start = i
    for j = 1, i - 1 do
      if path[j][4] == path[i][3] then start = j break end
    end
    break
  end
end
if tail > 0 and n - tail + 1 > start then start = n - tail + 1 end
local model = ''
for i = start - 1, 1, -1 do
  if path[i][2] == 'model_change' then
    model = redis.call('LINDEX', KEYS[2], tonumber(path[i][1]))
    break
  end
end
local lines = {}
for i = start, n do
  lines[#lines + 1] = redis.call('LINDEX', KEYS[2], tonumber(path[i][1]))
end
return {h[1], h[2], model, table.concat(lines, '\\n')}
"""
)

#: Returns {1, user, tenant} when the session existed, else {0}.
DELETE = """
local who = redis.call('HMGET', KEYS[1], 'user', 'tenant')
if redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) == 0 then return {0} end
return {1, who[1] or '', who[2] or ''}
"""
