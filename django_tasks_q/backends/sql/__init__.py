"""The SQL queue core under the SQLite storage (:mod:`django_tasks_q.backends.sqlite`: a file of its own, through
``sqlite3``) and the ORM storage (:mod:`django_tasks_q.backends.orm`: the tables of the Django database, through
Django's connections).

``core`` holds what the two share (the tables' description, row checks and mappers, the reaper's decisions, the
views of the key/value area, waiting for messages), ``dialects`` what differs between SQLite, PostgreSQL and
MariaDB/MySQL. Each storage has three layers here: how it reaches the database (``sqlite_connection``,
``orm_transport``), its key/value area and counters (``sqlite_data``, ``orm_data``) and reliable delivery with
the dead letters (``sqlite_delivery``, ``orm_delivery``); the storage classes add the queue and the schedule.
"""
