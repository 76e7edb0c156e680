"""Settings → queues: ``TASKS_Q`` names queues like ``CACHES`` names caches.

``queues["emails"]`` is the :class:`~django_tasks_q.hub.queue.TaskQueue` of the
``emails`` queue, built on first use (nothing is built at import time) and
rebuilt after ``TASKS_Q``, ``SECRET_KEY`` or ``USE_TZ`` change (``override_settings``
works). Tasks are kept in a registry per queue name that outlives rebuilds.

Without ``TASKS_Q`` there is one queue, ``default``, on the ORM storage, unless a djhuey ``HUEY``
setting is present: then its translation (:mod:`django_tasks_q.huey_settings`) is the one queue.

Each queue's settings are parsed once into a :class:`QueueSettings` — its storage class (found through the one
table of storages, :mod:`django_tasks_q.backends.registry`), the storage's and the hub's options, and the
mistakes found, each with the id of the system check that reports it. Building a hub raises the first mistake;
:mod:`django_tasks_q.checks` reports them all from the same object.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .backends.base import BaseStorage
from .backends.registry import ALIASES, load_storage_class
from .exceptions import ConfigurationError, UnknownQueue
from .queue_keys import HUB_KEYS, QUEUE_KEYS
from .registry import TaskRegistry
from .urls_config import parse_queue_url

DEFAULT_QUEUE = "default"
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {DEFAULT_QUEUE: {"BACKEND": "orm"}}

_EMPTY: Mapping[str, Any] = MappingProxyType({})
"""An empty read-only mapping (a field default: Python 3.11 refuses an unhashable default, so through a factory)."""


def configured_queues() -> dict[str, dict[str, Any]]:
    """The ``TASKS_Q`` setting (or ``HUEY`` translated, or the default) after shape checks.

    Raises :class:`ConfigurationError` (check ``django_tasks_q.E001``) when it is not a dict of queue settings.
    """
    value = getattr(settings, "TASKS_Q", None)
    if value is None:
        from .huey_settings import queues_from_huey_setting

        return queues_from_huey_setting() or {name: dict(conf) for name, conf in DEFAULT_SETTINGS.items()}
    if not isinstance(value, dict) or not value:
        raise _shape_error("TASKS_Q must be a non-empty dict of queue name → queue settings dict")
    for name, conf in value.items():
        if not isinstance(name, str) or not name:
            raise _shape_error(f"TASKS_Q: queue names must be non-empty strings, got {name!r}")
        if not isinstance(conf, dict):
            raise _shape_error(f"TASKS_Q[{name!r}] must be a dict, got {type(conf).__name__}")
    return value


def _shape_error(message: str) -> ConfigurationError:
    return ConfigurationError(message, check_id="django_tasks_q.E001", hint="See the settings reference in docs/settings.md.")


@dataclass(frozen=True)
class QueueSettings:
    """One queue of ``TASKS_Q``, parsed once for building its hub and for the system checks.

    ``errors`` holds what makes the queue unusable, each a :class:`ConfigurationError` naming the setting, with
    the id of the system check that reports it (``check_id``) and a ``hint``; building the hub raises the
    first, the checks report them. With no errors, ``storage_class`` is loaded.
    """

    name: str
    """The queue's name."""
    conf: Mapping[str, Any]
    """The queue's settings dict, as given."""
    backend: str | type | None = None
    """The storage as ``BACKEND`` gives it, or the alias its ``URL`` means."""
    storage_class: type[BaseStorage] | None = None
    """The storage class (``None`` when ``errors`` says why not)."""
    storage_options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """The storage's constructor keywords: the ``URL``'s parameters, then ``OPTIONS``, which win."""
    hub_options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """The hub's (``TaskQueue``'s) keyword arguments, from the queue keys in :data:`HUB_KEYS`."""
    errors: tuple[ConfigurationError, ...] = field(default=())
    """What makes the queue unusable (empty when it can be built)."""

    @property
    def where(self) -> str:
        """The setting this queue is, for messages: ``TASKS_Q['emails']``."""
        return f"TASKS_Q[{self.name!r}]"

    def storage(self) -> tuple[type[BaseStorage], dict[str, Any]]:
        """The storage class and its keyword arguments; the first of ``errors`` is raised if there are any."""
        if self.errors:
            raise self.errors[0]
        assert self.storage_class is not None
        return self.storage_class, dict(self.storage_options)


def parse_queue(name: str, conf: dict[str, Any]) -> QueueSettings:
    """Parse the settings dict ``conf`` of queue ``name``: its storage, the storage's and the hub's options."""
    parsed = QueueSettings(name, MappingProxyType(conf), hub_options=MappingProxyType(hub_options(name, conf)))
    try:
        backend, options = _storage_setting(parsed.where, conf)
        storage_class = load_storage_class(backend, where=f"{parsed.where}['BACKEND']")
    except ConfigurationError as exc:
        return replace(parsed, errors=(exc,))
    return replace(
        parsed, backend=backend, storage_class=storage_class, storage_options=MappingProxyType(options)
    )


def _storage_setting(where: str, conf: dict[str, Any]) -> tuple[str | type, dict[str, Any]]:
    """``BACKEND`` (or what ``URL`` means) and the storage options (the URL's, then ``OPTIONS``) of a queue."""
    unknown = sorted(set(conf) - QUEUE_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key(s) {unknown}; expected some of {sorted(QUEUE_KEYS)}", check_id="django_tasks_q.E002"
        )
    options = conf.get("OPTIONS") or {}
    if not isinstance(options, dict):
        raise ConfigurationError(
            f"{where}['OPTIONS'] must be a dict, got {type(options).__name__}", check_id="django_tasks_q.E005"
        )
    backend = conf.get("BACKEND")
    if conf.get("URL"):
        alias, url_options = parse_queue_url(conf["URL"], where=f"{where}['URL']")
        if backend and backend != alias:
            raise ConfigurationError(
                f"{where}: BACKEND {backend!r} contradicts URL, which means {alias!r}; give one",
                check_id="django_tasks_q.E003",
            )
        backend = alias
        options = {**url_options, **options}
    if not backend:
        raise ConfigurationError(
            f"{where} has neither BACKEND nor URL: it needs BACKEND (an alias or dotted path) or URL",
            check_id="django_tasks_q.E003",
            hint=f"Use one of {sorted(ALIASES)}, or a dotted path.",
        )
    return backend, dict(options)


def parsed_queues() -> dict[str, QueueSettings]:
    """Every configured queue, parsed (see :class:`QueueSettings`); ConfigurationError if ``TASKS_Q`` is malformed."""
    return {name: parse_queue(name, conf) for name, conf in configured_queues().items()}


def queue_settings(name: str) -> QueueSettings:
    """The parsed settings of queue ``name``; :class:`UnknownQueue` when there is no such queue."""
    return parse_queue(name, _queue_conf(name))


def _queue_conf(name: str) -> dict[str, Any]:
    queues_conf = configured_queues()
    if name not in queues_conf:
        raise UnknownQueue(f"no queue named {name!r} in TASKS_Q (configured: {sorted(queues_conf)})")
    return queues_conf[name]


def resolve_backend(name: str, conf: dict[str, Any]) -> tuple[type[BaseStorage], dict[str, Any]]:
    """The storage class and its keyword arguments for queue ``name`` (URL merged with OPTIONS)."""
    return parse_queue(name, conf).storage()


def hub_options(name: str, conf: dict[str, Any]) -> dict[str, Any]:
    """TaskQueue keyword arguments from a queue's settings."""
    return {param: conf[key] for key, param in HUB_KEYS.items() if key in conf}


def consumer_options(name: str) -> dict[str, Any]:
    """The ``CONSUMER`` dict of a queue's settings (empty when absent)."""
    options = _queue_conf(name).get("CONSUMER") or {}
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
    from .hub.queue import TaskQueue

    parsed = queue_settings(name)
    storage_class, storage_kwargs = parsed.storage()
    return TaskQueue(
        name,
        storage_class=storage_class,
        registry=registry_for(name),
        # Django's convention: aware UTC datetimes with USE_TZ, naive ones without.
        aware_datetimes=settings.USE_TZ,
        **parsed.hub_options,
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
    elif setting in ("HUEY", "DEBUG", "DATABASES") and getattr(settings, "TASKS_Q", None) is None:
        queues.reset()  # the queue is the HUEY setting's translation, which these settings change
