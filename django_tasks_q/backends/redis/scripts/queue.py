"""The scripts of the queue, the schedule and reliable delivery (see :mod:`.parts` for the conventions)."""

from __future__ import annotations

from django_tasks_q.backends.redis.scripts.parts import CLAIM, NEW_ID, NOTIFY, PUT, UNREADABLE

# ----------------------------------------------------------------------------------------------- the queue

# KEYS: seq, ready, notify   ARGV: base, data, p, s
ENQUEUE = (
    NEW_ID
    + NOTIFY
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
    NEW_ID
    + NOTIFY
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

# KEYS: ready, inflight, notify, [kv keys to peek]   ARGV: base, token, now, deadline
# -> {{id, data, claims, priority, {peeked values}} or nil, {id, problem, ...} of messages dead-lettered unread}
RESERVE = (
    CLAIM
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

# KEYS: ready, schedule or results   ARGV: base, n, what a member names ('m:' a message hash, 'kv:' a value)
# -> how many members were removed (with the keys they name)
FLUSH_CHUNK = """
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, member in ipairs(members) do
  redis.call('DEL', ARGV[1] .. ARGV[3] .. member)
  redis.call('ZREM', KEYS[1], member)
end
return #members
"""

# ----------------------------------------------------------------------------------------------- the schedule

# KEYS: seq, schedule   ARGV: base, data, timestamp, p, s
ADD_TO_SCHEDULE = (
    NEW_ID
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
    NEW_ID
    + NOTIFY
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

# ----------------------------------------------------------------------------------------------- reliable delivery

# KEYS: inflight, m, [kv, results, wait, wake]   ARGV: base, id, token, [member, value, ttl_ms or '']
ACK = (
    PUT
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
    PUT
    + CLAIM
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
    NOTIFY
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
    NOTIFY
    + UNREADABLE
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

