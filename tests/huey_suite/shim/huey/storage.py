"""``huey.storage``: the storage classes."""

from ._names import resolver

TABLE = {
    "BaseStorage": "django_tasks_q.backends.base:BaseStorage",
    "BlackHoleStorage": "django_tasks_q.backends.blackhole:BlackHoleStorage",
    "MemoryStorage": "django_tasks_q.backends.memory:MemoryStorage",
    "RedisStorage": "django_tasks_q.backends.redis:RedisStorage",
    "RedisExpireStorage": "django_tasks_q.backends.redis:RedisExpireStorage",
    "PriorityRedisStorage": "django_tasks_q.backends.redis:PriorityRedisStorage",
    "PriorityRedisExpireStorage": "django_tasks_q.backends.redis:PriorityRedisExpireStorage",
    "SqliteStorage": "django_tasks_q.backends.sqlite:SqliteStorage",
    "CySqliteStorage": "django_tasks_q.backends.sqlite:SqliteStorage",
    "FileStorage": "django_tasks_q.backends.file:FileStorage",
    "EmptyData": "django_tasks_q.backends.base:EmptyData",
    # huey.storage.cysqlite is the optional cysqlite driver module, None when it is not installed.
    "cysqlite": "None",
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
