"""Redis storages: the whole storage contract, with reliable (at-least-once) delivery, on a Redis server.

Four classes, as in huey, selected in settings by alias (``redis``, ``redis-expire``, ``priority-redis``,
``priority-redis-expire``) or used through the hub classes ``RedisHuey`` & co.:

=============================  =========  ===============================================================
class                          priority   results
=============================  =========  ===============================================================
``RedisStorage``               ignored    kept until read or flushed (or the ``ttl`` the hub gives)
``RedisExpireStorage``         ignored    expire ``expire_time`` seconds after they are written
``PriorityRedisStorage``       honoured   kept until read or flushed
``PriorityRedisExpireStorage`` honoured   expire ``expire_time`` seconds after they are written
=============================  =========  ===============================================================

Connection parameters are huey's: ``host='localhost'``, ``port=6379``, ``db=0``, ``password``,
``connection_pool``, ``url`` (overrides host/port/db/password), ``client_name``, ``health_check_interval=0``;
any other keyword that :class:`redis.Redis` accepts (``socket_timeout``, ``ssl``, ``username``, ``retry`` ...)
is passed on. ``client=`` takes a ready-made redis-py client instead (a :class:`redis.cluster.RedisCluster`, or
``Sentinel.master_for(...)``). Nothing connects until the first operation, so an unreachable server never
breaks an import or Django's start-up; when an operation cannot reach Redis it raises
:class:`~django_tasks_q.exceptions.StorageError` with the redis-py error chained, and redis-py reconnects on
the next call.

The modules: :mod:`.storage` (the four classes), :mod:`.delivery` (reliable delivery and dead letters),
:mod:`.data` (key/value data and results), :mod:`.keyspace` (the key layout), :mod:`.scripts` (the Lua
scripts), :mod:`.wire` (script arguments and replies), :mod:`.connection` (building the redis-py client) and
:mod:`.transport` (how commands reach the server).
"""

from __future__ import annotations

from django_tasks_q.backends.redis.connection import default_retry
from django_tasks_q.backends.redis.storage import (
    PriorityRedisExpireStorage,
    PriorityRedisStorage,
    RedisExpireStorage,
    RedisStorage,
)

__all__ = [
    "PriorityRedisExpireStorage",
    "PriorityRedisStorage",
    "RedisExpireStorage",
    "RedisStorage",
    "default_retry",
]
