"""A djhuey project's ``HUEY`` setting, read as one ``TASKS_Q`` queue.

When ``TASKS_Q`` is absent and ``HUEY`` is present, :func:`django_tasks_q.conf.configured_queues` uses the
translation made here, so a project moving from ``huey.contrib.djhuey`` runs on its existing setting. The
system checks of this module say what the translation is (``django_tasks_q.W101``, with the ``TASKS_Q``
setting to paste in), and name every key that has no equivalent (``django_tasks_q.E101``); such a key is
left out of the queue, and the error stops management commands until it is removed.

``HUEY`` takes djhuey's two forms: a dict (``huey_class``, ``name``, ``results``, ``store_none``, ``utc``,
``immediate``, ``connection``, ``consumer``, and storage parameters at the top level) or a ready queue
instance. Like djhuey, a dict without ``immediate`` runs tasks in the calling process when ``DEBUG`` is on:
the project asked for djhuey's behaviour by keeping its setting. ``TASKS_Q`` never derives ``IMMEDIATE`` from
``DEBUG``, so the equivalent printed by W101 spells ``IMMEDIATE`` out.
"""

from __future__ import annotations

import pprint
import threading
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .backends.base import BaseStorage
from .backends.errors import UnknownOptions
from .backends.registry import STORAGES, by_class_path, load_storage_class
from .exceptions import ConfigurationError
from .queue_keys import HUB_KEYS

HUEY_DEFAULT_CLASS = "huey.RedisHuey"

HUEY_CLASSES: dict[str, str] = {
    f"{module}.{entry.huey_class}": entry.alias
    for entry in STORAGES
    if entry.huey_class and entry.alias
    for module in ("huey", "huey.api")
}
"""huey's queue classes (by the paths djhuey settings use) → the storage alias with the same behaviour."""

HUEY_HUB_KEYS = {
    "results": "RESULTS",
    "store_none": "STORE_NONE",
    "utc": "UTC",
    "immediate": "IMMEDIATE",
    "always_eager": "IMMEDIATE",
    "serializer": "SERIALIZER",
    "compression": "COMPRESSION",
}
"""Top-level ``HUEY`` keys that are queue options; every other unknown top-level key is a storage parameter,
as in huey."""

UNSUPPORTED_KEYS = {
    "immediate_use_memory": "IMMEDIATE always runs on a private in-memory storage here",
    "store_intermediate_errors": "a retried task's intermediate errors are not stored as its result here",
}

RUN_HUEY_CONSUMER_KEYS = frozenset({"flush_locks", "extra_locks", "logfile", "verbose", "simple_log"})
"""``HUEY['consumer']`` keys that ``run_huey`` applies itself: they are command-line options of ``run_tasks``
(``--flush-locks``) or logging, not consumer settings of a queue."""


@dataclass
class HueyTranslation:
    """``HUEY`` as one ``TASKS_Q`` queue, with what could not be translated."""

    name: str
    """The queue's name in ``TASKS_Q`` (djhuey's ``name``)."""
    queue: dict[str, Any]
    """The queue's ``TASKS_Q`` settings."""
    command_options: dict[str, Any] = field(default_factory=dict)
    """Consumer keys that only ``run_huey`` applies (see :data:`RUN_HUEY_CONSUMER_KEYS`)."""
    problems: list[tuple[str, str]] = field(default_factory=list)
    """``(where, why)`` for every key with no equivalent, e.g. ``("HUEY['consumer']['worker_type']", ...)``."""
    immediate_from_debug: bool = False
    """Whether ``IMMEDIATE`` was taken from ``DEBUG`` (djhuey's default)."""

    def tasks_q(self) -> dict[str, dict[str, Any]]:
        """The ``TASKS_Q`` setting equivalent to ``HUEY``."""
        return {self.name: self.queue}

    def equivalent(self) -> str:
        """``TASKS_Q = {...}`` as Python source to put in settings (reprs for objects such as pools)."""
        body = pprint.pformat(self.tasks_q(), sort_dicts=False, width=90)
        return "TASKS_Q = " + body.replace("\n", "\n" + " " * len("TASKS_Q = "))


def default_huey_name() -> str:
    """djhuey's queue name when ``HUEY`` gives none: the default database's name, or ``huey``."""
    try:
        return str(settings.DATABASES["default"]["NAME"])
    except (AttributeError, KeyError, TypeError):
        return "huey"


def translate_huey_setting(value: Any, *, debug: bool, default_name: str) -> HueyTranslation:
    """Translate a ``HUEY`` setting (a dict or a queue instance) into one ``TASKS_Q`` queue.

    Raises ConfigurationError when ``value`` is neither form; keys with no equivalent are reported in
    ``problems`` and left out.
    """
    if isinstance(value, dict):
        return _from_dict(value, debug=debug, default_name=default_name)
    if hasattr(value, "storage_kwargs") and isinstance(getattr(value, "name", None), str):
        return _from_instance(value)
    raise ConfigurationError(
        f"HUEY must be a dict of djhuey settings or a queue instance such as RedisHuey('my-app'), "
        f"got {type(value).__name__}"
    )


def _from_dict(value: dict[str, Any], *, debug: bool, default_name: str) -> HueyTranslation:
    conf = dict(value)
    problems: list[tuple[str, str]] = []
    name = conf.pop("name", default_name)
    if not isinstance(name, str) or not name:
        problems.append(("HUEY['name']", f"must be a non-empty string, got {name!r}; using {default_name!r}"))
        name = default_name
    queue: dict[str, Any] = {}
    huey_class = conf.pop("huey_class", HUEY_DEFAULT_CLASS)
    backend, storage_class = _backend_for_class(huey_class, "HUEY['huey_class']", problems)
    if backend is not None:
        queue["BACKEND"] = backend
    connection = conf.pop("connection", None) or {}
    if not isinstance(connection, dict):
        problems.append(("HUEY['connection']", f"must be a dict, got {type(connection).__name__}"))
        connection = {}
    consumer = conf.pop("consumer", None) or {}
    if not isinstance(consumer, dict):
        problems.append(("HUEY['consumer']", f"must be a dict, got {type(consumer).__name__}"))
        consumer = {}

    use_zlib = conf.pop("use_zlib", None)
    for key, target in HUEY_HUB_KEYS.items():
        if key in conf:
            queue[target] = conf.pop(key)
    if use_zlib and "COMPRESSION" not in queue:
        queue["COMPRESSION"] = True
    immediate_from_debug = "IMMEDIATE" not in queue
    if immediate_from_debug:
        queue["IMMEDIATE"] = bool(debug)

    options: dict[str, Any] = {}
    # huey passes the connection's keys and the remaining top-level keys to the storage alike.
    candidates = [(key, val, f"HUEY[{key!r}]") for key, val in conf.items()]
    candidates += [(key, val, f"HUEY['connection'][{key!r}]") for key, val in connection.items()]
    refused = _refused_options(storage_class, {key: val for key, val, _where in candidates})
    for key, val, where in candidates:
        if key in UNSUPPORTED_KEYS:
            problems.append((where, f"has no equivalent: {UNSUPPORTED_KEYS[key]}"))
        elif refused is None or key not in refused.unknown:
            options[key] = val
        else:
            problems.append((
                where,
                f"has no equivalent: it is not a queue option, and {refused.storage_class.__name__} does not accept "
                f"it (it accepts {refused.accepted})",
            ))
    if options:
        queue["OPTIONS"] = options

    consumer_settings, command_options = _split_consumer(consumer, problems)
    if consumer_settings:
        queue["CONSUMER"] = consumer_settings
    return HueyTranslation(name, queue, command_options, problems, immediate_from_debug)


def _refused_options(storage_class: type[BaseStorage] | None, options: dict[str, Any]) -> UnknownOptions | None:
    """The options the storage's own check refuses as unknown (``None`` when it refuses none)."""
    if storage_class is None:
        return None
    problems = storage_class.check_options(options, where="HUEY")
    return next((problem for problem in problems if isinstance(problem, UnknownOptions)), None)


def _backend_for_class(
    huey_class: Any, where: str, problems: list[tuple[str, str]]
) -> tuple[str | None, type[BaseStorage] | None]:
    """The ``BACKEND`` (alias or dotted path) and storage class of a djhuey ``huey_class``."""
    if isinstance(huey_class, type):
        path = f"{huey_class.__module__}.{huey_class.__qualname__}"
    elif isinstance(huey_class, str):
        path = huey_class
    else:
        problems.append((where, f"must be a dotted path such as 'huey.RedisHuey', got {huey_class!r}"))
        return None, None
    alias = HUEY_CLASSES.get(path)
    if alias is None and not path.startswith("huey."):
        alias = _backend_of_queue_class(path)
    if alias is None:
        problems.append((
            where,
            f"{path!r} has no equivalent; use one of {sorted(HUEY_CLASSES)}, or a django_tasks_q queue class",
        ))
        return None, None
    try:
        return alias, load_storage_class(alias, where=where)
    except ConfigurationError as exc:
        problems.append((where, str(exc)))
        return None, None


def _backend_of_queue_class(path: str) -> str | None:
    """The storage of a TaskQueue subclass named by ``path`` (e.g. ``django_tasks_q.SqliteHuey``), if any."""
    from .hub.queue import TaskQueue

    try:
        klass = import_string(path)
    except ImportError:
        return None
    if not (isinstance(klass, type) and issubclass(klass, TaskQueue)):
        return None
    if klass.storage_path:
        storage_path = klass.storage_path
    elif klass.storage_class is not None:
        storage_path = f"{klass.storage_class.__module__}.{klass.storage_class.__qualname__}"
    else:
        return None
    return _alias_of(storage_path)


def _alias_of(storage_path: str) -> str:
    entry = by_class_path(storage_path)
    return entry.alias if entry and entry.alias else storage_path


def _split_consumer(
    consumer: dict[str, Any], problems: list[tuple[str, str]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    # Imported here, so that only a HUEY setting with consumer keys loads the consumer package.
    from .consumer.options import WORKER_TYPES, ConsumerOptions

    known = set(ConsumerOptions.__dataclass_fields__)
    settings_part: dict[str, Any] = {}
    command_part: dict[str, Any] = {}
    for key, val in consumer.items():
        where = f"HUEY['consumer'][{key!r}]"
        if key == "worker_type" and val not in WORKER_TYPES:
            problems.append((where, f"{val!r} has no equivalent; workers are one of {list(WORKER_TYPES)}"))
        elif key in known:
            settings_part[key] = val
        elif key in RUN_HUEY_CONSUMER_KEYS:
            command_part[key] = val
        else:
            problems.append((where, f"has no equivalent; consumer options are {sorted(known)}"))
    return settings_part, command_part


def _from_instance(hub: Any) -> HueyTranslation:
    from .hub.queue import TaskQueue

    problems: list[tuple[str, str]] = []
    klass = type(hub)
    if isinstance(hub, TaskQueue):
        storage_path = hub.storage_path or (
            f"{hub.storage_class.__module__}.{hub.storage_class.__qualname__}" if hub.storage_class else None
        )
        backend = _alias_of(storage_path) if storage_path else None
        if backend is None:
            problems.append(("HUEY", f"{klass.__name__} {hub.name!r} has no storage class to run on"))
    else:
        backend = HUEY_CLASSES.get(f"{klass.__module__}.{klass.__qualname__}")
        if backend is None:
            problems.append(("HUEY", f"{klass.__module__}.{klass.__qualname__} has no equivalent"))
    queue: dict[str, Any] = {}
    if backend is not None:
        queue["BACKEND"] = backend
    if hub.storage_kwargs:
        queue["OPTIONS"] = dict(hub.storage_kwargs)
    if isinstance(hub, TaskQueue):
        defaults = TaskQueue(hub.name)
        for key, param in HUB_KEYS.items():
            if getattr(hub, param) != getattr(defaults, param):
                queue[key] = getattr(hub, param)
        if not hub.immediate_use_memory:
            problems.append(("HUEY.immediate_use_memory", f"has no equivalent: {UNSUPPORTED_KEYS['immediate_use_memory']}"))
    else:
        for attr, key in (("results", "RESULTS"), ("store_none", "STORE_NONE"), ("utc", "UTC")):
            queue[key] = getattr(hub, attr)
        queue["IMMEDIATE"] = bool(getattr(hub, "immediate", False))
    return HueyTranslation(hub.name, queue, {}, problems)


_cache_lock = threading.Lock()
_cached: list[HueyTranslation | None] = []


def huey_translation() -> HueyTranslation | None:
    """The translation of ``settings.HUEY`` (``None`` without one), made once per settings change."""
    with _cache_lock:
        if not _cached:
            value = getattr(settings, "HUEY", None)
            _cached.append(
                None
                if value is None
                else translate_huey_setting(value, debug=settings.DEBUG, default_name=default_huey_name())
            )
        return _cached[0]


def queues_from_huey_setting() -> dict[str, dict[str, Any]] | None:
    """``TASKS_Q`` as translated from ``HUEY`` (``None`` when there is no ``HUEY``); ConfigurationError if malformed."""
    translation = huey_translation()
    if translation is None:
        return None
    return {translation.name: dict(translation.queue)}


@receiver(setting_changed)
def _forget_translation(*, setting: str, **kwargs: Any) -> None:
    # The queues built from the translation are dropped by django_tasks_q.conf on the same settings.
    if setting in ("HUEY", "DEBUG", "DATABASES"):
        with _cache_lock:
            _cached.clear()


def check_huey_setting(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """System checks of ``HUEY``: what it translates to (W101), keys with no equivalent (E101), bad forms."""
    value = getattr(settings, "HUEY", None)
    if value is None:
        return []
    if getattr(settings, "TASKS_Q", None) is not None:
        return [
            Warning(
                "HUEY is ignored because TASKS_Q is set",
                hint="Remove the HUEY setting; TASKS_Q configures the queues.",
                id="django_tasks_q.W102",
            )
        ]
    try:
        translation = huey_translation()
    except ConfigurationError as exc:
        return [Error(str(exc), hint="See docs/djhuey.md.", id="django_tasks_q.E102")]
    assert translation is not None
    messages: list[CheckMessage] = [
        Error(f"{where} {why}", hint="Remove it from HUEY, or move to TASKS_Q.", id="django_tasks_q.E101")
        for where, why in translation.problems
    ]
    hint = "Replace HUEY with this setting to silence this warning."
    if translation.immediate_from_debug:
        hint += " IMMEDIATE is DEBUG's value, as djhuey does; TASKS_Q never derives it from DEBUG."
    if translation.command_options:
        hint += (
            f" HUEY['consumer'] keys {sorted(translation.command_options)} are applied by run_huey only: "
            "with run_tasks use --flush-locks and Django's LOGGING."
        )
    messages.append(
        Warning(
            f"django-tasks-q runs on the HUEY setting, translated to:\n{translation.equivalent()}",
            hint=hint,
            id="django_tasks_q.W101",
        )
    )
    return messages
