"""``huey.api``: the hub, the huey-named queue classes, tasks, results, groups and chords."""

from ._names import resolver

TABLE = {
    "Huey": "django_tasks_q:Huey",
    "MemoryHuey": "django_tasks_q:MemoryHuey",
    "BlackHoleHuey": "django_tasks_q:BlackHoleHuey",
    "RedisHuey": "django_tasks_q:RedisHuey",
    "RedisExpireHuey": "django_tasks_q:RedisExpireHuey",
    "PriorityRedisHuey": "django_tasks_q:PriorityRedisHuey",
    "PriorityRedisExpireHuey": "django_tasks_q:PriorityRedisExpireHuey",
    "SqliteHuey": "django_tasks_q:SqliteHuey",
    # huey's CySqliteHuey is SqliteHuey on another SQLite driver; ours has one driver.
    "CySqliteHuey": "django_tasks_q:SqliteHuey",
    "FileHuey": "django_tasks_q:FileHuey",
    "PostgresHuey": "django_tasks_q:PostgresHuey",
    "Task": "django_tasks_q:Task",
    "PeriodicTask": "django_tasks_q:PeriodicTask",
    "TaskWrapper": "django_tasks_q:TaskWrapper",
    "Result": "django_tasks_q:Result",
    "ResultGroup": "django_tasks_q:ResultGroup",
    "ChordResult": "django_tasks_q:ChordResult",
    "chord": "django_tasks_q:chord",
    "group": "django_tasks_q:group",
    "crontab": "django_tasks_q:crontab",
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
