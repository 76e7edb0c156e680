"""A module named ``huey`` whose attributes are django_tasks_q's objects, for running huey's own tests.

Only names are mapped (see ``_names.py``); ``huey.tests`` is huey's unmodified test package, placed beside this
shim by ``tests/huey_suite/run.py``.
"""

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
    "FileHuey": "django_tasks_q:FileHuey",
    "crontab": "django_tasks_q:crontab",
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
