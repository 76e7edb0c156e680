"""The SQL queue core under the SQLite storage (:mod:`django_tasks_q.backends.sqlite`: a file of its own, through
``sqlite3``) and the ORM storage (:mod:`django_tasks_q.backends.orm`: the tables of the Django database, through
Django's connections).

Both storages run the same statements on tables of the same layout. ``core`` holds what does not depend on the
database (the columns, the tables' names, row checks and mappers, the reaper's decisions, the views of the
key/value area, waiting for messages), ``dialects`` what differs between SQLite, PostgreSQL and MariaDB/MySQL.
The statements are in three layers, each on the primitives of a transport (``_run``, ``_execute``, ``_fetchone``,
``_txn`` ...): ``data`` (the key/value area and counters), ``delivery`` (reliable delivery and dead letters)
and ``queue`` (the queue and the schedule). The transports are ``orm_transport`` (Django's connections) and
``sqlite_connection`` (one ``sqlite3`` connection per thread); ``sqlite_layout`` creates the SQLite file's
tables (and rebuilds a file of an earlier layout), ``sqlite_delivery`` holds what only the SQLite storage does.
"""
