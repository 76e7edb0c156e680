"""The scripts of key/value data, results and dead letters (see :mod:`.parts` for the conventions)."""

from __future__ import annotations

from django_tasks_q.backends.redis.scripts.parts import NEW_ID, NOTIFY, NOW_MS, PUT, WAKE

# ----------------------------------------------------------------------------------------------- key/value data

# KEYS: kv, results, wait, wake   ARGV: base, member, value, ttl_ms or '', is_result
PUT_DATA = (
    PUT
    + """
put(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return 1
"""
)

# KEYS: kv, results, wait, wake   ARGV: base, member, value, ttl_ms or ''   -> 1 if written
PUT_IF_EMPTY = (
    WAKE
    + """
local ok
if ARGV[4] == '' then
  ok = redis.call('SET', KEYS[1], ARGV[3], 'NX')
else
  ok = redis.call('SET', KEYS[1], ARGV[3], 'NX', 'PX', ARGV[4])
end
if not ok then return 0 end
redis.call('ZREM', KEYS[2], ARGV[2])
wake(KEYS[3], KEYS[4])
return 1
"""
)

# KEYS: kv, results   ARGV: base, member   -> value or nil
POP_DATA = """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return value
"""

# KEYS: kv, results   ARGV: base, member   -> 1 if there was a value
DELETE_DATA = """
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return n
"""

# KEYS: kv, wait   ARGV: base, marker ttl ms   -> {value} or {} (and the caller is registered as a waiter)
WAIT_GET = """
local value = redis.call('GET', KEYS[1])
if value then return {value} end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {}
"""

# KEYS: counter   ARGV: base, amount, ttl_ms or ''   -> new value
INCR = """
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[2])
if existed == 0 and ARGV[3] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return value
"""

# ----------------------------------------------------------------------------------------------- results

# KEYS: results   ARGV: base, cursor, count   -> {next cursor, key, value, key, value ...}
RESULTS_SCAN = (
    NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now_ms())
local page = redis.call('ZSCAN', KEYS[1], ARGV[2], 'COUNT', tonumber(ARGV[3]))
local out = {page[1]}
local items = page[2]
for i = 1, #items, 2 do
  local member = items[i]
  local value = redis.call('GET', ARGV[1] .. 'kv:' .. member)
  if value then
    out[#out + 1] = member
    out[#out + 1] = value
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
return out
"""
)

# KEYS: results   ARGV: base
RESULT_COUNT = (
    NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now_ms())
return redis.call('ZCARD', KEYS[1])
"""
)

# ----------------------------------------------------------------------------------------------- dead letters

# KEYS: seq, dead   ARGV: base, data, reason, detail, attempts, failed_at, p, s   -> new id
ADD_DEAD_LETTER = (
    NEW_ID
    + """
local id = new_id(KEYS[1])
local dh = ARGV[1] .. 'dead:' .. id
redis.call('HSET', dh, 'd', ARGV[2], 'r', ARGV[3], 'x', ARGV[4], 'a', ARGV[5], 'f', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', dh, 'p', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', dh, 's', ARGV[8]) end
redis.call('ZADD', KEYS[2], ARGV[6], id)
return id
"""
)

# KEYS: dead   ARGV: base, stop   -> flat list of 7 fields per letter: id, data, reason, detail, attempts,
#    failed_at, priority ('' when unknown)
DEAD_LETTERS = """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', ARGV[1] .. 'dead:' .. id, 'd', 'r', 'x', 'a', 'f', 'p')
  if v[1] then
    local row = {id, v[1], v[2] or '', v[3] or '', v[4] or '0', v[5] or '0', v[6] or ''}
    for _, field in ipairs(row) do out[#out + 1] = field end
  end
end
return out
"""

# KEYS: dead, seq, ready, notify   ARGV: base, dead letter id   -> 1 if requeued
REQUEUE_DEAD_LETTER = (
    NEW_ID
    + NOTIFY
    + """
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then return 0 end
local dh = ARGV[1] .. 'dead:' .. ARGV[2]
local v = redis.call('HMGET', dh, 'd', 'p', 's')
redis.call('DEL', dh)
if not v[1] then return 0 end
local id = new_id(KEYS[2])
local m = ARGV[1] .. 'm:' .. id
redis.call('HSET', m, 'd', v[1])
if v[2] then redis.call('HSET', m, 'p', v[2]) end
if v[3] then redis.call('HSET', m, 's', v[3]) end
redis.call('ZADD', KEYS[3], v[3] or '0', id)
notify(KEYS[4], 1)
return 1
"""
)

# KEYS: dead   ARGV: base, older_than or '', n   -> how many were deleted (all, or all older, in chunks of n)
PURGE_DEAD_CHUNK = """
local ids
if ARGV[2] == '' then
  ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
end
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', ARGV[1] .. 'dead:' .. id)
end
return #ids
"""

# KEYS: dead   ARGV: base, older_than or '', id...   -> how many of the ids were deleted
PURGE_DEAD_IDS = """
local limit = nil
if ARGV[2] ~= '' then limit = tonumber(ARGV[2]) end
local n = 0
for i = 3, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and (limit == nil or tonumber(score) < limit) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('DEL', ARGV[1] .. 'dead:' .. ARGV[i])
    n = n + 1
  end
end
return n
"""
