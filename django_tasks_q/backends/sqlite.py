"""The SQLite storage's public home: ``django_tasks_q.backends.sqlite.SqliteStorage`` in settings.

The storage itself lives in :mod:`django_tasks_q.backends.sql.sqlite`, on the SQL queue core.
"""

from .sql.sqlite import SchemaMissing, SqliteStorage

__all__ = ["SchemaMissing", "SqliteStorage"]
