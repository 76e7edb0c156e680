"""huey's ``PostgresStorage`` on the ORM storage: the same parameters, the tables of a Django database.

huey 3.3's ``PostgresHuey`` opens its own psycopg connections from a DSN and creates ``<prefix>_*`` tables when
it is built. In a Django project the database is already in ``settings.DATABASES`` and the tables come from
``manage.py migrate``, so this storage keeps huey's parameters and maps them onto the ORM storage:

* ``dsn`` (a URL or a ``key=value`` string) or huey's connection keywords (``host``, ``port``, ``dbname``,
  ``user``, ...) name the database; the storage runs on the PostgreSQL entry of ``DATABASES`` that points at the
  same database (same name, host, port and user), or on ``using=`` given directly. A DSN that matches no entry
  is a :class:`~django_tasks_q.exceptions.ConfigurationError` naming what to add: a second connection pool of
  Django's own would escape its transactions and its test databases.
* ``blocking`` and ``read_timeout`` keep their meaning: an idle consumer waits on ``LISTEN`` (as every ORM
  storage on PostgreSQL does) at most ``read_timeout`` seconds per wait, or polls when ``blocking`` is false.
* ``password``, ``sslmode`` and the other keywords huey hands to psycopg come from the ``DATABASES`` entry
  instead; any other keyword is an ORM storage option (an unknown one is refused).
* ``table_prefix`` other than huey's default and ``connection=`` (a callable returning a connection) are
  refused with the reason; ``create_tables=True`` is huey's default and means "the tables must exist": they
  are the app's migrations.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from django.db import connections

from .errors import ConfigurationError
from .orm import OrmStorage

__all__ = ["PostgresStorage"]

_DEFAULT_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})
_DEFAULT_PORT = "5432"
_CONNECTION_KEYS = ("dbname", "host", "port", "user")
# Keywords huey passes on to psycopg that name how to connect, not which database: the DATABASES entry has its own.
_ENTRY_KEYS = ("database", "password", "sslmode", "connect_timeout", "application_name")


def _normalized(params: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """``(dbname, host, port, user)`` with libpq's defaults, so two spellings of one database compare equal."""
    host = str(params.get("host") or "")
    return (
        str(params.get("dbname") or ""),
        "localhost" if host in _DEFAULT_HOSTS else host,
        str(params.get("port") or _DEFAULT_PORT),
        str(params.get("user") or ""),
    )


def _django_params(settings_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A ``DATABASES`` entry in libpq's key names."""
    return {
        "dbname": settings_dict.get("NAME"),
        "host": settings_dict.get("HOST"),
        "port": settings_dict.get("PORT"),
        "user": settings_dict.get("USER"),
    }


def database_alias_for(
    dsn: str | None,
    connection_params: Mapping[str, Any],
    queue: str,
    databases: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The alias of the PostgreSQL entry of ``databases`` (``settings.DATABASES``) that a huey DSN or its keywords
    point at."""
    from psycopg.conninfo import conninfo_to_dict

    wanted: dict[str, Any] = dict(conninfo_to_dict(dsn)) if dsn else {}
    wanted.update({key: value for key, value in connection_params.items() if key in _CONNECTION_KEYS})
    if "database" in connection_params:  # psycopg2's spelling of dbname
        wanted.setdefault("dbname", connection_params["database"])
    target = _normalized(wanted)
    databases = connections.settings if databases is None else databases
    postgres_aliases = [alias for alias in databases if databases[alias]["ENGINE"].endswith("postgresql")]
    for alias in postgres_aliases:
        if _normalized(_django_params(databases[alias])) == target:
            return alias
    described = f"dbname={target[0]!r} host={target[1]!r} port={target[2]} user={target[3]!r}"
    raise ConfigurationError(
        f"PostgresHuey({queue!r}): no PostgreSQL entry of settings.DATABASES points at the database of its "
        f"DSN ({described}; PostgreSQL entries: {postgres_aliases or 'none'}). Add it to DATABASES, e.g. "
        f"DATABASES['tasks'] = env.db_url('TASKS_DATABASE_URL'), run `manage.py migrate --database tasks`, and "
        f"pass using='tasks'"
    )


class PostgresStorage(OrmStorage):
    """huey's PostgreSQL storage parameters on the ORM storage of a PostgreSQL database of ``DATABASES``."""

    supported_vendors: ClassVar[tuple[str, ...]] = ("postgresql",)

    def __init__(
        self,
        name: str = "huey",
        dsn: str | None = None,
        connection: Any = None,
        blocking: bool = True,
        read_timeout: float = 1,
        table_prefix: str = "huey",
        create_tables: bool = True,
        using: str | None = None,
        purge_interval: float | None = 300.0,
        **connection_params: Any,
    ) -> None:
        if connection is not None:
            raise ConfigurationError(
                f"PostgresHuey({name!r}): connection= (a callable returning a psycopg connection) is not "
                "supported: the storage uses Django's connection to a DATABASES entry; pass dsn= or using="
            )
        if table_prefix != "huey":
            raise ConfigurationError(
                f"PostgresHuey({name!r}): table_prefix={table_prefix!r} is not supported: the tables are the "
                "app's migrations (tasks_q_*), shared by every queue and told apart by the queue name"
            )
        if not isinstance(read_timeout, int | float) or isinstance(read_timeout, bool) or not read_timeout > 0:
            raise ConfigurationError(
                f"PostgresHuey({name!r}): read_timeout must be a positive number of seconds, got {read_timeout!r}"
            )
        storage_options = {
            key: connection_params.pop(key)
            for key in list(connection_params)
            if key not in _CONNECTION_KEYS and key not in _ENTRY_KEYS
        }
        if using is None:
            using = database_alias_for(dsn, connection_params, name) if dsn or connection_params else "default"
        super().__init__(name, using=using, purge_interval=purge_interval, **storage_options)
        self.dsn = dsn
        self.create_tables = bool(create_tables)
        self.wait_blocks = bool(blocking)
        self.read_timeout = float(read_timeout)

    def wait_for_messages(self, timeout: float, wake: threading.Event | None = None) -> bool:
        """Wait on ``LISTEN`` at most ``read_timeout`` seconds at a time (huey's meaning); with ``blocking=False``
        only ``wake`` ends the wait early, as in a polling consumer."""
        timeout = min(timeout, self.read_timeout)
        if not self.wait_blocks:
            return bool(wake is not None and wake.wait(timeout))
        return super().wait_for_messages(timeout, wake)
