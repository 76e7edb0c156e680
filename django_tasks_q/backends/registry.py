"""The one table of the storages django-tasks-q ships: alias, URL schemes, class, huey class.

Settings (``BACKEND`` aliases), queue URLs (their schemes), the system checks, the translation of a djhuey
``HUEY`` setting and the huey-named queue classes (generated from it in :mod:`django_tasks_q.hub.huey`) all read
:data:`STORAGES`; :func:`load_storage_class` is the
one way a storage class is found from an alias or a dotted path. Classes are named by dotted path and imported
only when asked for, so reading the table imports no storage (nor redis-py).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigurationError, MissingDependency

if TYPE_CHECKING:
    from .base import BaseStorage

__all__ = ["ALIASES", "STORAGES", "StorageEntry", "by_alias", "by_class_path", "by_scheme", "load_storage_class"]


@dataclass(frozen=True)
class StorageEntry:
    """One storage as settings, URLs and huey's class names know it."""

    alias: str | None
    """The ``BACKEND`` alias in ``TASKS_Q``; ``None`` for a storage that only its huey class uses (settings name
    it by its dotted path, if at all)."""

    class_path: str
    """The dotted path of the storage class, imported on first use."""

    url_schemes: tuple[str, ...] = ()
    """Queue URL schemes that name this storage (a Redis URL's query may still pick another Redis alias)."""

    huey_class: str | None = None
    """The name of huey's queue class on the same storage (``RedisHuey``): djhuey's ``huey_class`` setting
    translates to this alias, and ``django_tasks_q`` exports a queue class of that name."""

    requires: str | None = None
    """The importable name of a package the storage needs that is an optional dependency (the extra of the same
    name installs it), or ``None``."""

    built_with_queue: bool = False
    """The huey class builds its storage when the queue is built, so that bad storage arguments raise there (as
    in huey). Only for storages whose construction touches nothing (the Redis ones open no connection)."""

    def load(self, *, where: str) -> type[BaseStorage]:
        """Import the storage class; :class:`ConfigurationError` naming ``where`` when it cannot be."""
        return load_storage_class(self.class_path, where=where)


_REDIS = "django_tasks_q.backends.redis"

STORAGES: tuple[StorageEntry, ...] = (
    StorageEntry("redis", f"{_REDIS}.RedisStorage", ("redis", "rediss"), "RedisHuey", "redis", True),
    StorageEntry(
        "priority-redis", f"{_REDIS}.PriorityRedisStorage", ("redis+priority", "rediss+priority"), "PriorityRedisHuey",
        "redis", True,
    ),
    StorageEntry("redis-expire", f"{_REDIS}.RedisExpireStorage", (), "RedisExpireHuey", "redis", True),
    StorageEntry(
        "priority-redis-expire", f"{_REDIS}.PriorityRedisExpireStorage", (), "PriorityRedisExpireHuey", "redis", True
    ),
    StorageEntry("sqlite", "django_tasks_q.backends.sqlite.SqliteStorage", ("sqlite",), "SqliteHuey"),
    StorageEntry("file", "django_tasks_q.backends.file.FileStorage", ("file",), "FileHuey"),
    StorageEntry("orm", "django_tasks_q.backends.orm.OrmStorage", ("orm",)),
    StorageEntry(None, "django_tasks_q.backends.postgres.PostgresStorage", (), "PostgresHuey"),
    StorageEntry("memory", "django_tasks_q.backends.memory.MemoryStorage", ("memory",), "MemoryHuey"),
    StorageEntry("blackhole", "django_tasks_q.backends.blackhole.BlackHoleStorage", ("blackhole",), "BlackHoleHuey"),
)
"""Every storage shipped, in the order the documentation lists them."""

ALIASES: tuple[str, ...] = tuple(entry.alias for entry in STORAGES if entry.alias)
"""Every ``BACKEND`` alias, in table order."""

URL_SCHEMES: tuple[str, ...] = tuple(scheme for entry in STORAGES for scheme in entry.url_schemes)
"""Every queue URL scheme, in table order."""

_BY_ALIAS = {entry.alias: entry for entry in STORAGES if entry.alias}
_BY_PATH = {entry.class_path: entry for entry in STORAGES}
_BY_SCHEME = {scheme: entry for entry in STORAGES for scheme in entry.url_schemes}
_OPTIONAL_PACKAGES = frozenset(entry.requires for entry in STORAGES if entry.requires)
_E003 = "django_tasks_q.E003"


def by_alias(alias: str) -> StorageEntry | None:
    """The entry of a ``BACKEND`` alias, or ``None``."""
    return _BY_ALIAS.get(alias)


def by_class_path(path: str) -> StorageEntry | None:
    """The entry whose class has the dotted path ``path``, or ``None``."""
    return _BY_PATH.get(path)


def by_scheme(scheme: str) -> StorageEntry | None:
    """The entry a queue URL scheme names (lower case), or ``None``."""
    return _BY_SCHEME.get(scheme)


def load_storage_class(backend: str | type, *, where: str) -> type[BaseStorage]:
    """The storage class of ``backend``: an alias, a dotted path or a class; :class:`ConfigurationError` naming
    ``where`` (the setting) when it is none of them.

    A storage whose optional package is not installed raises :class:`MissingDependency` (check
    ``django_tasks_q.E006``) before anything is imported; any other problem is check ``django_tasks_q.E003``.
    """
    from .base import BaseStorage

    if isinstance(backend, type):
        storage_class: object = backend
    else:
        if not isinstance(backend, str):
            raise ConfigurationError(f"{where} must be a string, got {type(backend).__name__}", check_id=_E003)
        entry = _BY_ALIAS.get(backend) or _BY_PATH.get(backend)
        path = entry.class_path if entry else backend
        if "." not in path:
            raise ConfigurationError(
                f"{where}: unknown backend {backend!r}; {_backend_suggestion(backend)}", check_id=_E003
            )
        if entry and entry.requires and importlib.util.find_spec(entry.requires) is None:
            raise _missing(entry.requires, where, backend)
        storage_class = _import(path, where, backend)
    if not (isinstance(storage_class, type) and issubclass(storage_class, BaseStorage)):
        raise ConfigurationError(f"{where}: {backend!r} is not a BaseStorage subclass", check_id=_E003)
    return storage_class


def _import(path: str, where: str, backend: str) -> object:
    module_name, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except ModuleNotFoundError as exc:
        if exc.name in _OPTIONAL_PACKAGES:
            raise _missing(exc.name, where, backend) from exc
        raise ConfigurationError(f"{where}: cannot import {path!r}: {exc}", check_id=_E003) from exc
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        # TypeError: among others, a storage class whose declared features do not hold.
        raise ConfigurationError(f"{where}: cannot import {path!r}: {exc}", check_id=_E003) from exc


def _missing(package: str, where: str, backend: str) -> MissingDependency:
    return MissingDependency(
        f"{where} is {backend!r} but the {package} package is not installed (install django-tasks-q[{package}])",
        hint=f"pip install 'django-tasks-q[{package}]'",
    )


def _backend_suggestion(backend: str) -> str:
    close = difflib.get_close_matches(backend.lower(), _BY_ALIAS, n=1, cutoff=0.6)
    choices = f"one of {', '.join(repr(alias) for alias in sorted(_BY_ALIAS))}, or a dotted path"
    return f"did you mean {close[0]!r}? (valid: {choices})" if close else f"use {choices}"
