"""The ORM storage's public home: ``django_tasks_q.backends.orm.OrmStorage`` in settings.

The storage itself lives in :mod:`django_tasks_q.backends.sql.orm`, on the SQL queue core.
"""

from .sql.orm import OrmStorage, OrmTablesMissing

__all__ = ["OrmStorage", "OrmTablesMissing"]
