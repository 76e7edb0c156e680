"""Settings → queues: ``TASKS_Q`` names queues like ``CACHES`` names caches.

``queues["emails"]`` is the :class:`~django_tasks_q.queue.TaskQueue` of the
``emails`` queue, built on first use (nothing is built at import time) and
rebuilt after ``TASKS_Q``, ``SECRET_KEY`` or ``USE_TZ`` change (``override_settings``
works). Tasks are kept in a registry per queue name that outlives rebuilds.

Without ``TASKS_Q`` there is one queue, ``default``, on the ORM storage, unless a djhuey ``HUEY``
setting is present: then its translation (:mod:`django_tasks_q.huey_settings`) is the one queue.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .backends.base import BaseStorage
from .exceptions import ConfigurationError, UnknownQueue
from .registry import TaskRegistry
from .urls_config import parse_queue_url

DEFAULT_QUEUE = "default"
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {DEFAULT_QUEUE: {"BACKEND": "orm"}}

BACKEND_ALIASES = {
    "redis": "django_tasks_q.backends.redis.RedisStorage",
    "priority-redis": "django_tasks_q.backends.redis.PriorityRedisStorage",
    "redis-expire": "django_tasks_q.backends.redis.RedisExpireStorage",
    "priority-redis-expire": "django_tasks_q.backends.redis.PriorityRedisExpireStorage",
    "sqlite": "django_tasks_q.backends.sqlite.SqliteStorage",
    "file": "django_tasks_q.backends.file.FileStorage",
    "orm": "django_tasks_q.backends.orm.OrmStorage",
    "memory": "django_tasks_q.backends.memory.MemoryStorage",
    "blackhole": "django_tasks_q.backends.blackhole.BlackHoleStorage",
}

HUB_KEYS = {
    "RESULTS": "results",
    "STORE_NONE": "store_none",
    "UTC": "utc",
    "IMMEDIATE": "immediate",
    "SERIALIZER": "serializer",
    "SIGNING": "signing",
    "COMPRESSION": "compression",
    "RESULT_TTL": "result_ttl",
    "LEASE": "lease",
    "MAX_ATTEMPTS": "max_attempts",
    "MAX_RECLAIMS": "max_reclaims",
    "MAX_MESSAGE_SIZE": "max_message_size",
    "ENQUEUE_ON_COMMIT": "enqueue_on_commit",
    "ON_COMMIT_USING": "on_commit_using",
}
QUEUE_KEYS = frozenset({"BACKEND", "OPTIONS", "URL", "CONSUMER", *HUB_KEYS})


def configured_queues() -> dict[str, dict[str, Any]]:
    """The ``TASKS_Q`` setting (or ``HUEY`` translated, or the default) after shape checks; ConfigurationError."""
    value = getattr(settings, "TASKS_Q", None)
    if value is None:
        from .huey_settings import queues_from_huey_setting

        return queues_from_huey_setting() or {name: dict(conf) for name, conf in DEFAULT_SETTINGS.items()}
    if not isinstance(value, dict) or not value:
        raise ConfigurationError("TASKS_Q must be a non-empty dict of queue name → queue settings dict")
    for name, conf in value.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"TASKS_Q: queue names must be non-empty strings, got {name!r}")
        if not isinstance(conf, dict):
            raise ConfigurationError(f"TASKS_Q[{name!r}] must be a dict, got {type(conf).__name__}")
    return value


def resolve_backend(name: str, conf: dict[str, Any]) -> tuple[type[BaseStorage], dict[str, Any]]:
    """The storage class and its keyword arguments for queue ``name`` (URL merged with OPTIONS)."""
    unknown = set(conf) - QUEUE_KEYS
    if unknown:
        raise ConfigurationError(
            f"TASKS_Q[{name!r}]: unknown key(s) {sorted(unknown)}; expected some of {sorted(QUEUE_KEYS)}"
        )
    options = conf.get("OPTIONS") or {}
    if not isinstance(options, dict):
        raise ConfigurationError(f"TASKS_Q[{name!r}]['OPTIONS'] must be a dict, got {type(options).__name__}")
    backend = conf.get("BACKEND")
    if conf.get("URL"):
        alias, url_options = parse_queue_url(conf["URL"], where=f"TASKS_Q[{name!r}]['URL']")
        if backend and backend != alias:
            raise ConfigurationError(
                f"TASKS_Q[{name!r}]: BACKEND {backend!r} contradicts URL (which means {alias!r}); give one"
            )
        backend = alias
        options = {**url_options, **options}
    if not backend:
        raise ConfigurationError(f"TASKS_Q[{name!r}] needs BACKEND (an alias or dotted path) or URL")
    return load_backend(backend, where=f"TASKS_Q[{name!r}]['BACKEND']"), dict(options)


def load_backend(backend: str | type, *, where: str) -> type[BaseStorage]:
    """Import a storage class from an alias or dotted path; ConfigurationError naming ``where``."""
    if isinstance(backend, type):
        storage_class = backend
    else:
        if not isinstance(backend, str):
            raise ConfigurationError(f"{where} must be a string, got {type(backend).__name__}")
        path = BACKEND_ALIASES.get(backend, backend)
        if "." not in path:
            raise ConfigurationError(f"{where}: unknown backend {backend!r}; {_backend_suggestion(backend)}")
        try:
            storage_class = import_string(path)
        except ImportError as exc:
            raise ConfigurationError(f"{where}: cannot import {path!r}: {exc}") from exc
    if not (isinstance(storage_class, type) and issubclass(storage_class, BaseStorage)):
        raise ConfigurationError(f"{where}: {backend!r} is not a BaseStorage subclass")
    return storage_class


def _backend_suggestion(backend: str) -> str:
    close = difflib.get_close_matches(backend.lower(), BACKEND_ALIASES, n=1, cutoff=0.6)
    choices = f"one of {', '.join(repr(alias) for alias in sorted(BACKEND_ALIASES))}, or a dotted path"
    return f"did you mean {close[0]!r}? (valid: {choices})" if close else f"use {choices}"


def hub_options(name: str, conf: dict[str, Any]) -> dict[str, Any]:
    """TaskQueue keyword arguments from a queue's settings."""
    return {param: conf[key] for key, param in HUB_KEYS.items() if key in conf}


def consumer_options(name: str) -> dict[str, Any]:
    """The ``CONSUMER`` dict of a queue's settings (empty when absent)."""
    conf = configured_queues().get(name)
    if conf is None:
        raise UnknownQueue(f"no queue named {name!r} in TASKS_Q (configured: {sorted(configured_queues())})")
    options = conf.get("CONSUMER") or {}
    if not isinstance(options, dict):
        raise ConfigurationError(f"TASKS_Q[{name!r}]['CONSUMER'] must be a dict")
    return dict(options)


_registries: dict[str, TaskRegistry] = {}
_registries_lock = threading.Lock()


def registry_for(name: str) -> TaskRegistry:
    """The task registry of queue ``name`` (shared by every hub built for that name)."""
    with _registries_lock:
        registry = _registries.get(name)
        if registry is None:
            registry = _registries[name] = TaskRegistry(name)
        return registry


def build_queue(name: str) -> Any:
    """Build the hub of queue ``name`` from settings; it presents aware UTC datetimes when ``USE_TZ`` is on."""
    from .queue import TaskQueue

    queues_conf = configured_queues()
    if name not in queues_conf:
        raise UnknownQueue(f"no queue named {name!r} in TASKS_Q (configured: {sorted(queues_conf)})")
    conf = queues_conf[name]
    storage_class, storage_kwargs = resolve_backend(name, conf)
    return TaskQueue(
        name,
        storage_class=storage_class,
        registry=registry_for(name),
        # Django's convention: aware UTC datetimes with USE_TZ, naive ones without.
        aware_datetimes=settings.USE_TZ,
        **hub_options(name, conf),
        **storage_kwargs,
    )


class QueueHandler:
    """``queues[name]``: the hubs of the configured queues, built lazily and thread-safely."""

    def __init__(self) -> None:
        self._queues: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Any:
        queue = self._queues.get(name)
        if queue is None:
            with self._lock:
                queue = self._queues.get(name)
                if queue is None:
                    queue = self._queues[name] = build_queue(name)
        return queue

    def __contains__(self, name: object) -> bool:
        return name in configured_queues()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        """Configured queue names, in settings order."""
        return list(configured_queues())

    def all(self) -> list[Any]:
        """The hub of every configured queue."""
        return [self[name] for name in self.names()]

    def reset(self) -> None:
        """Drop built hubs (closing their storages) so the next access rebuilds them from settings."""
        with self._lock:
            built, self._queues = self._queues, {}
        for queue in built.values():
            storage = queue._storage
            if storage is not None:
                storage.close()


queues = QueueHandler()


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting in ("TASKS_Q", "SECRET_KEY", "SECRET_KEY_FALLBACKS", "USE_TZ"):
        queues.reset()
