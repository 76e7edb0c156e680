"""The Lua scripts of the Redis storages (see ``django_tasks_q/backends/redis.py`` for the key layout).

Every step that touches more than one key, or reads and then writes, is one of these scripts, so it runs
atomically on the server and costs one round trip. ``RedisStorage`` registers each script once per client with
redis-py's ``register_script`` (which calls ``EVALSHA`` and loads the script on ``NOSCRIPT``).

Conventions shared by all scripts:

* ``ARGV[1]`` is the queue's key base, ``<prefix>:{<name>}:``; keys that depend on data (``m:<id>``,
  ``kv:<key>`` ...) are built from it inside the script. They carry the same ``{<name>}`` hash tag as the
  declared ``KEYS``, so on Redis Cluster they live in the same slot and the scripts stay valid there.
* Times (deadlines, ``reserved_at``, ``failed_at``, schedule timestamps) come from the calling process as
  strings made by Python's ``repr(float)`` and are stored verbatim (``ZADD`` parses them exactly), never
  formatted by Lua, whose ``tostring`` keeps only 14 significant digits. The only server clock in use is
  ``TIME`` for the results index, because Redis expires keys by its own clock.
* Message ids are a per-queue sequence number written as 14 hex digits: lexicographic order is numeric
  order, which is what makes equal-score ``ZSET`` members first-in first-out.
* A message hash ``m:<id>`` holds ``d`` (the bytes), ``p`` (priority, only when not 0), ``s`` (its score in
  the ready set, only when not 0: ``-priority`` on priority storages), ``c`` (claims), and while in flight
  ``t`` (fencing token) and ``r`` (``reserved_at``).
* A message hash whose ``p`` or ``c`` is not an integer (or whose ``c`` is too large to count up) cannot be
  claimed or reclaimed: the claim and the reaper check both fields *before* changing anything and move such a
  message to the dead letters in the same script (reason ``unreadable_record``), returning its id and what was
  wrong so that the storage logs it, then go on with the next message.
"""

from __future__ import annotations

__all__ = ["NOTIFY_CAP", "SCRIPTS", "WAKE_CAP"]

NOTIFY_CAP = 256
"""Most wake-up tokens kept in a queue's notify list (they are hints; a full list wakes waiters anyway)."""

WAKE_CAP = 64
"""Most tokens pushed to wake ``wait_result`` callers of one key at a time."""

_NOTIFY = f"""
local function notify(key, n)
  if n <= 0 then return end
  local room = {NOTIFY_CAP} - redis.call('LLEN', key)
  if n > room then n = room end
  for _ = 1, n do redis.call('RPUSH', key, '1') end
end
"""

_NEW_ID = """
local function new_id(seq_key)
  return string.format('%014x', redis.call('INCR', seq_key))
end
"""

_WAKE = f"""
local function wake(wait_key, wake_key)
  local n = redis.call('GET', wait_key)
  if n then
    redis.call('DEL', wait_key)
    n = tonumber(n) or 1
    if n > {WAKE_CAP} then n = {WAKE_CAP} end
    for _ = 1, n do redis.call('RPUSH', wake_key, '1') end
    redis.call('PEXPIRE', wake_key, 5000)
  end
end
"""

_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# put(kv, results, wait, wake, member, value, ttl_ms or '', is_result '1'/'0')
_PUT = (
    _NOW_MS
    + _WAKE
    + """
local function put(kv, results, wait_key, wake_key, member, value, ttl, is_result)
  if ttl == '' then
    redis.call('SET', kv, value)
  else
    redis.call('SET', kv, value, 'PX', ttl)
  end
  if is_result == '1' then
    local now = now_ms()
    local score = '+inf'
    if ttl ~= '' then score = now + tonumber(ttl) end
    redis.call('ZADD', results, score, member)
    redis.call('ZREMRANGEBYSCORE', results, '-inf', '(' .. now)
  else
    redis.call('ZREM', results, member)
  end
  wake(wait_key, wake_key)
end
"""
)

# ----------------------------------------------------------------------------------------------- the queue

# KEYS: seq, ready, notify   ARGV: base, data, p, s
ENQUEUE = (
    _NEW_ID
    + _NOTIFY
    + """
local id = new_id(KEYS[1])
local m = ARGV[1] .. 'm:' .. id
redis.call('HSET', m, 'd', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', m, 'p', ARGV[3]) end
local score = '0'
if ARGV[4] ~= '' then
  redis.call('HSET', m, 's', ARGV[4])
  score = ARGV[4]
end
redis.call('ZADD', KEYS[2], score, id)
notify(KEYS[3], 1)
return id
"""
)

# KEYS: seq, ready, notify   ARGV: base, then (data, p, s) for each message, in order
ENQUEUE_MANY = (
    _NEW_ID
    + _NOTIFY
    + """
local n = 0
for i = 2, #ARGV, 3 do
  local id = new_id(KEYS[1])
  local m = ARGV[1] .. 'm:' .. id
  redis.call('HSET', m, 'd', ARGV[i])
  if ARGV[i + 1] ~= '' then redis.call('HSET', m, 'p', ARGV[i + 1]) end
  local score = '0'
  if ARGV[i + 2] ~= '' then
    redis.call('HSET', m, 's', ARGV[i + 2])
    score = ARGV[i + 2]
  end
  redis.call('ZADD', KEYS[2], score, id)
  n = n + 1
end
notify(KEYS[3], n)
return n
"""
)

# KEYS: ready, notify   ARGV: base   -> data or nil (and the notify list is cleared when the queue is empty)
DEQUEUE = """
while true do
  local popped = redis.call('ZPOPMIN', KEYS[1])
  if #popped == 0 then
    redis.call('DEL', KEYS[2])
    return false
  end
  local m = ARGV[1] .. 'm:' .. popped[1]
  local data = redis.call('HGET', m, 'd')
  redis.call('DEL', m)
  if data then return data end
end
"""

# unreadable(p, c) -> what is wrong with a message hash's priority and claim count, or nil when both are usable.
# bury_unreadable(...) moves it, in the same script, to the dead letters (reason unreadable_record).
_UNREADABLE = """
local function unreadable(p, c)
  if p and not (#p <= 20 and string.match(p, '^%-?%d+$')) then
    return 'priority ' .. string.format('%q', string.sub(p, 1, 40)) .. ' is not an integer'
  end
  if c and not (#c <= 15 and string.match(c, '^%d+$')) then
    return 'claim count ' .. string.format('%q', string.sub(c, 1, 40)) .. ' is not a countable integer'
  end
  return nil
end

local function bury_unreadable(base, id, m, data, problem, failed_at)
  local dh = base .. 'dead:' .. id
  redis.call('HSET', dh, 'd', data, 'r', 'unreadable_record', 'x', problem, 'a', 0, 'f', failed_at)
  redis.call('ZADD', base .. 'dead', failed_at, id)
  redis.call('DEL', m)
end
"""

# The reserve step shared by RESERVE and ACK_AND_RESERVE. With a claim, the values of KEYS[first_peek ..
# first_peek + n_peek - 1] (false when missing) are read in the same step and returned as a fifth element.
# Messages that cannot be claimed are dead-lettered on the way; their ids and problems are added to `buried`.
_CLAIM = _UNREADABLE + """
local function peek(first, n)
  local values = {}
  for i = first, first + n - 1 do values[#values + 1] = redis.call('GET', KEYS[i]) end
  return values
end

local function claim(ready, inflight, notify, base, token, now, deadline, first_peek, n_peek, buried)
  while true do
    local popped = redis.call('ZPOPMIN', ready)
    if #popped == 0 then
      redis.call('DEL', notify)
      return false
    end
    local id = popped[1]
    local m = base .. 'm:' .. id
    local v = redis.call('HMGET', m, 'd', 'p', 'c')
    local problem = v[1] and unreadable(v[2], v[3])
    if problem then
      bury_unreadable(base, id, m, v[1], problem, now)
      buried[#buried + 1] = id
      buried[#buried + 1] = problem
    elseif v[1] then
      local claims = redis.call('HINCRBY', m, 'c', 1)
      redis.call('HSET', m, 't', token, 'r', now)
      redis.call('ZADD', inflight, deadline, id)
      return {id, v[1], claims, v[2], peek(first_peek, n_peek)}
    else
      redis.call('DEL', m)
    end
  end
end
"""

# KEYS: ready, inflight, notify, [kv keys to peek]   ARGV: base, token, now, deadline
# -> {{id, data, claims, priority, {peeked values}} or nil, {id, problem, ...} of messages dead-lettered unread}
RESERVE = (
    _CLAIM
    + """
local buried = {}
local row = claim(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 4, #KEYS - 3, buried)
return {row, buried}
"""
)

# KEYS: ready or schedule   ARGV: base, stop   -> data of members 0..stop, in order
LIST_BODIES = """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local data = redis.call('HGET', ARGV[1] .. 'm:' .. id, 'd')
  if data then out[#out + 1] = data end
end
return out
"""

# KEYS: ready or schedule   ARGV: base, n   -> how many members were removed (with their message hashes)
FLUSH_CHUNK = """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. 'm:' .. id)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
"""

# ----------------------------------------------------------------------------------------------- the schedule

# KEYS: seq, schedule   ARGV: base, data, timestamp, p, s
ADD_TO_SCHEDULE = (
    _NEW_ID
    + """
local id = new_id(KEYS[1])
local m = ARGV[1] .. 'm:' .. id
redis.call('HSET', m, 'd', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', m, 'p', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', m, 's', ARGV[5]) end
redis.call('ZADD', KEYS[2], ARGV[3], id)
return id
"""
)

# KEYS: schedule   ARGV: base, timestamp, n   -> {count examined, data...}
READ_SCHEDULE_CHUNK = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {#ids}
for _, id in ipairs(ids) do
  local m = ARGV[1] .. 'm:' .. id
  local data = redis.call('HGET', m, 'd')
  redis.call('DEL', m)
  redis.call('ZREM', KEYS[1], id)
  if data then out[#out + 1] = data end
end
return out
"""

# KEYS: seq, schedule, ready, notify   ARGV: base, timestamp, n   -> {count examined, count moved}
ENQUEUE_DUE_CHUNK = (
    _NEW_ID
    + _NOTIFY
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local moved = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  local old = ARGV[1] .. 'm:' .. id
  if redis.call('EXISTS', old) == 1 then
    local nid = new_id(KEYS[1])
    local m = ARGV[1] .. 'm:' .. nid
    redis.call('RENAME', old, m)
    redis.call('ZADD', KEYS[3], redis.call('HGET', m, 's') or '0', nid)
    moved = moved + 1
  end
end
notify(KEYS[4], moved)
return {#ids, moved}
"""
)

# ----------------------------------------------------------------------------------------------- key/value data

# KEYS: kv, results, wait, wake   ARGV: base, member, value, ttl_ms or '', is_result
PUT_DATA = (
    _PUT
    + """
put(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return 1
"""
)

# KEYS: kv, results, wait, wake   ARGV: base, member, value, ttl_ms or ''   -> 1 if written
PUT_IF_EMPTY = (
    _WAKE
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
    _NOW_MS
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
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now_ms())
return redis.call('ZCARD', KEYS[1])
"""
)

# KEYS: results   ARGV: base, n   -> how many index entries were handled
FLUSH_RESULTS_CHUNK = """
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, member in ipairs(members) do
  redis.call('DEL', ARGV[1] .. 'kv:' .. member)
  redis.call('ZREM', KEYS[1], member)
end
return #members
"""

# ----------------------------------------------------------------------------------------------- reliable delivery

# KEYS: inflight, m, [kv, results, wait, wake]   ARGV: base, id, token, [member, value, ttl_ms or '']
ACK = (
    _PUT
    + """
if redis.call('HGET', KEYS[2], 't') ~= ARGV[3] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
if #KEYS > 2 then
  put(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[4], ARGV[5], ARGV[6], '1')
end
return 1
"""
)


# KEYS: inflight, m, ready, notify, [kv keys to peek], [kv, results, wait, wake]
# ARGV: base, id, token, new token, now, deadline, number of keys to peek, [member, value, ttl_ms or '']
# -> {acked 1/0, next: {id, data, claims, priority, {peeked values}} or false, {id, problem, ...} as RESERVE}
ACK_AND_RESERVE = (
    _PUT
    + _CLAIM
    + """
local n_peek = tonumber(ARGV[7])
local acked = 0
if redis.call('HGET', KEYS[2], 't') == ARGV[3] then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
  local r = 5 + n_peek
  if #KEYS >= r then
    put(KEYS[r], KEYS[r + 1], KEYS[r + 2], KEYS[r + 3], ARGV[8], ARGV[9], ARGV[10], '1')
  end
  acked = 1
end
local buried = {}
local row = claim(KEYS[3], KEYS[1], KEYS[4], ARGV[1], ARGV[4], ARGV[5], ARGV[6], 5, n_peek, buried)
return {acked, row, buried}
"""
)

# KEYS: inflight, m   ARGV: base, id, token, deadline
RENEW = """
if redis.call('HGET', KEYS[2], 't') ~= ARGV[3] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[4], ARGV[2])
return 1
"""

# KEYS: inflight, ready, notify, m   ARGV: base, id, token, count_attempt
RELEASE = (
    _NOTIFY
    + """
if redis.call('HGET', KEYS[4], 't') ~= ARGV[3] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[4], 't', 'r')
if ARGV[4] == '0' and redis.call('HINCRBY', KEYS[4], 'c', -1) < 0 then
  redis.call('HSET', KEYS[4], 'c', 0)
end
redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[4], 's') or '0', ARGV[2])
notify(KEYS[3], 1)
return 1
"""
)

# KEYS: inflight, m, dead, dead hash   ARGV: base, id, token, reason, detail, failed_at
BURY = """
if redis.call('HGET', KEYS[2], 't') ~= ARGV[3] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[2])
local v = redis.call('HMGET', KEYS[2], 'd', 'p', 's', 'c')
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[4], 'd', v[1] or '', 'r', ARGV[4], 'x', ARGV[5], 'a', v[4] or '0', 'f', ARGV[6])
if v[2] then redis.call('HSET', KEYS[4], 'p', v[2]) end
if v[3] then redis.call('HSET', KEYS[4], 's', v[3]) end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[2])
return 1
"""

# KEYS: inflight, ready, notify, dead
# ARGV: base, now, max_attempts or '', n, failed_at, max_reclaims or '', progress span or ''
# A reservation whose deadline lies more than the progress span after its reserved_at was renewed while its task
# ran: its worker vanished mid-task, and max_reclaims caps it instead of max_attempts (reason 'max_reclaims').
# -> the count examined, {id, problem, ...} of messages dead-lettered unread, then a flat list of 8 fields per
#    reclaimed reservation: id, data, token, claims, deadline, reserved_at, priority, dead ('' when requeued,
#    else the reason)
REQUEUE_EXPIRED_CHUNK = (
    _NOTIFY
    + _UNREADABLE
    + """
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
local buried = {}
local out = {#rows / 2, buried}
local requeued = 0
local cap = tonumber(ARGV[3])
local reclaim_cap = tonumber(ARGV[6])
local span = tonumber(ARGV[7])
for i = 1, #rows, 2 do
  local id, deadline = rows[i], rows[i + 1]
  local m = ARGV[1] .. 'm:' .. id
  redis.call('ZREM', KEYS[1], id)
  local v = redis.call('HMGET', m, 'd', 'p', 's', 'c', 't', 'r')
  local problem = v[1] and unreadable(v[2], v[4])
  if v[1] and not problem and v[3] and not tonumber(v[3]) then
    problem = 'ready score ' .. string.format('%q', string.sub(v[3], 1, 40)) .. ' is not a number'
  end
  if problem then
    bury_unreadable(ARGV[1], id, m, v[1], problem, ARGV[5])
    buried[#buried + 1] = id
    buried[#buried + 1] = problem
  elseif v[1] then
    local claims = tonumber(v[4] or '0')
    local dead = ''
    local detail
    if reclaim_cap and span and v[6] and tonumber(deadline) - tonumber(v[6]) > span then
      if claims >= reclaim_cap then
        dead = 'max_reclaims'
        detail = 'lease expired after ' .. claims .. ' attempt(s), the last while its task was running (its '
          .. 'worker vanished: killed, out of memory, pre-empted); the limit for such reclaims is ' .. ARGV[6]
      end
    elseif cap and claims >= cap then
      dead = 'max_attempts'
      detail = 'lease expired after ' .. claims .. ' attempt(s); the limit is ' .. ARGV[3]
    end
    if dead ~= '' then
      local dh = ARGV[1] .. 'dead:' .. id
      redis.call('HSET', dh, 'd', v[1], 'r', dead, 'x', detail, 'a', claims, 'f', ARGV[5])
      if v[2] then redis.call('HSET', dh, 'p', v[2]) end
      if v[3] then redis.call('HSET', dh, 's', v[3]) end
      redis.call('ZADD', KEYS[4], ARGV[5], id)
      redis.call('DEL', m)
    else
      redis.call('HDEL', m, 't', 'r')
      redis.call('ZADD', KEYS[2], v[3] or '0', id)
      requeued = requeued + 1
    end
    local row = {id, v[1], v[5] or '', claims, deadline, v[6] or deadline, v[2] or '0', dead}
    for _, field in ipairs(row) do out[#out + 1] = field end
  else
    redis.call('DEL', m)
  end
end
notify(KEYS[3], requeued)
return out
"""
)

# KEYS: inflight   ARGV: base, stop   -> flat list of 7 fields per reservation:
#    id, data, token, claims, deadline, reserved_at, priority
IN_FLIGHT = """
local rows = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]), 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do
  local id, deadline = rows[i], rows[i + 1]
  local v = redis.call('HMGET', ARGV[1] .. 'm:' .. id, 'd', 't', 'c', 'r', 'p')
  if v[1] and v[2] then
    local row = {id, v[1], v[2], v[3] or '0', deadline, v[4] or deadline, v[5] or '0'}
    for _, field in ipairs(row) do out[#out + 1] = field end
  end
end
return out
"""

# ----------------------------------------------------------------------------------------------- dead letters

# KEYS: seq, dead   ARGV: base, data, reason, detail, attempts, failed_at, p, s   -> new id
ADD_DEAD_LETTER = (
    _NEW_ID
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
    _NEW_ID
    + _NOTIFY
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

SCRIPTS: dict[str, str] = {
    "enqueue": ENQUEUE,
    "enqueue_many": ENQUEUE_MANY,
    "dequeue": DEQUEUE,
    "reserve": RESERVE,
    "list_bodies": LIST_BODIES,
    "flush_chunk": FLUSH_CHUNK,
    "add_to_schedule": ADD_TO_SCHEDULE,
    "read_schedule_chunk": READ_SCHEDULE_CHUNK,
    "enqueue_due_chunk": ENQUEUE_DUE_CHUNK,
    "put_data": PUT_DATA,
    "put_if_empty": PUT_IF_EMPTY,
    "pop_data": POP_DATA,
    "delete_data": DELETE_DATA,
    "wait_get": WAIT_GET,
    "incr": INCR,
    "results_scan": RESULTS_SCAN,
    "result_count": RESULT_COUNT,
    "flush_results_chunk": FLUSH_RESULTS_CHUNK,
    "ack": ACK,
    "ack_and_reserve": ACK_AND_RESERVE,
    "renew": RENEW,
    "release": RELEASE,
    "bury": BURY,
    "requeue_expired_chunk": REQUEUE_EXPIRED_CHUNK,
    "in_flight": IN_FLIGHT,
    "add_dead_letter": ADD_DEAD_LETTER,
    "dead_letters": DEAD_LETTERS,
    "requeue_dead_letter": REQUEUE_DEAD_LETTER,
    "purge_dead_chunk": PURGE_DEAD_CHUNK,
    "purge_dead_ids": PURGE_DEAD_IDS,
}
"""Script name → Lua source; ``RedisStorage`` registers each one with its client."""
