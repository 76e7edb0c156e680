"""The SQL storages: the SQLite storage (a file of its own, through ``sqlite3``) and the ORM storage (the tables of
the Django database, through Django's connections), on one queue core.

``core`` holds what the two share (the tables' description, row checks and mappers, the reaper's decisions),
``dialects`` what differs between SQLite, PostgreSQL and MariaDB/MySQL. The storages' public homes are
:mod:`django_tasks_q.backends.sqlite` and :mod:`django_tasks_q.backends.orm`.
"""
