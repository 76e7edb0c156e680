"""Lua functions shared by the Redis storages' scripts, and the conventions every script follows.

A script of :mod:`.queue` or :mod:`.data` is the fragments it calls (each a ``local function``) followed by its
own body: Redis runs a script as one self-contained text, so a fragment is repeated in every script that uses it.

Every step that touches more than one key, or reads and then writes, is a script, so it runs atomically on
the server and costs one round trip. The storage's transport registers each script once per client and runs it
with ``EVALSHA`` (loading it again with ``SCRIPT LOAD`` when the server answers ``NOSCRIPT``).

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

__all__ = ["CLAIM", "NEW_ID", "NOTIFY", "NOTIFY_CAP", "NOW_MS", "PUT", "UNREADABLE", "WAKE", "WAKE_CAP"]

NOTIFY_CAP = 256
"""Most wake-up tokens kept in a queue's notify list (they are hints; a full list wakes waiters anyway)."""

WAKE_CAP = 64
"""Most tokens pushed to wake ``wait_result`` callers of one key at a time."""

NOTIFY = f"""
local function notify(key, n)
  if n <= 0 then return end
  local room = {NOTIFY_CAP} - redis.call('LLEN', key)
  if n > room then n = room end
  for _ = 1, n do redis.call('RPUSH', key, '1') end
end
"""

NEW_ID = """
local function new_id(seq_key)
  return string.format('%014x', redis.call('INCR', seq_key))
end
"""

WAKE = f"""
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

NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# put(kv, results, wait, wake, member, value, ttl_ms or '', is_result '1'/'0')
PUT = (
    NOW_MS
    + WAKE
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

# unreadable(p, c) -> what is wrong with a message hash's priority and claim count, or nil when both are usable.
# bury_unreadable(...) moves it, in the same script, to the dead letters (reason unreadable_record).
UNREADABLE = """
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
CLAIM = UNREADABLE + """
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
