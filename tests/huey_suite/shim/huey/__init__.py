"""A module named ``huey`` whose attributes are django_tasks_q's objects, for running huey's own tests.

Only names are mapped (see ``_names.py``); ``huey.tests`` is huey's unmodified test package, placed beside this
shim by ``tests/huey_suite/run.py``.
"""

from ._names import resolver
from .api import TABLE as _API_TABLE

# huey's top-level names are a subset of huey.api's: the same objects, mapped once (in api.py).
TABLE = {
    name: _API_TABLE[name]
    for name in (
        "Huey",
        "MemoryHuey",
        "BlackHoleHuey",
        "RedisHuey",
        "RedisExpireHuey",
        "PriorityRedisHuey",
        "PriorityRedisExpireHuey",
        "SqliteHuey",
        "FileHuey",
        "crontab",
    )
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
