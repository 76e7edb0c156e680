"""System checks for ``TASKS_Q``: every misconfiguration has an id and names the queue and the key.

========================  =========================================================================
id                        problem
========================  =========================================================================
django_tasks_q.E001       ``TASKS_Q`` is not a non-empty dict of queue name → settings dict
django_tasks_q.E002       a queue has unknown keys
django_tasks_q.E003       ``BACKEND`` is not a known alias, or its dotted path does not import
django_tasks_q.E004       ``URL`` cannot be parsed
django_tasks_q.E005       ``OPTIONS`` holds a parameter the storage does not accept
django_tasks_q.E006       a Redis backend is configured but the ``redis`` package is not installed
django_tasks_q.E007       ``SERIALIZER`` is pickle (or unsafe) while signing is off
django_tasks_q.E008       the lease is shorter than three lease renewals
django_tasks_q.E009       ``CONSUMER`` holds an unknown or invalid option
django_tasks_q.E010       a queue option (``LEASE``, ``MAX_ATTEMPTS``, ``RESULT_TTL`` ...) is invalid
django_tasks_q.E012       a queue uses the ORM storage but ``django_tasks_q`` is not in ``INSTALLED_APPS``
django_tasks_q.W001       a storage with the feature ``process_local`` (memory, black hole) without ``IMMEDIATE``:
                          a separate ``run_tasks`` process never sees its tasks
django_tasks_q.W002       the storage has no reliable delivery (it does not declare the feature ``reliable``):
                          a task is lost if its worker dies
django_tasks_q.W004       a database lacks django-tasks-q's tables (``migrate`` not run); tagged ``database``, so
                          run by ``manage.py check --database <alias>`` (a warning: ``migrate`` runs these checks
                          too, and an error would stop the command that creates the tables)
django_tasks_q.W003       periodic tasks are registered on a queue whose consumer has periodic off
django_tasks_q.E101       a djhuey ``HUEY`` key has no ``TASKS_Q`` equivalent (see huey_settings.py)
django_tasks_q.E102       ``HUEY`` is neither a dict nor a queue instance
django_tasks_q.W101       the queue runs on ``HUEY`` translated; the message gives the ``TASKS_Q`` equivalent
django_tasks_q.W102       ``HUEY`` is ignored because ``TASKS_Q`` is set
========================  =========================================================================

The settings are parsed once (:class:`~django_tasks_q.conf.QueueSettings`): E001 to E004 and E006 are the
errors of that parsing, each carrying its check id; E005 and E012 come from the storage itself
(:meth:`BaseStorage.check_options <django_tasks_q.backends.base.BaseStorage.check_options>`).
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .backends.base import BaseStorage, Feature
from .conf import QueueSettings, parse_queue, parsed_queues, registry_for
from .exceptions import ConfigurationError
from .huey_settings import check_huey_setting

ID = "django_tasks_q"

register(check_huey_setting, Tags.compatibility)


def _error(code: str, msg: str, hint: str | None = None) -> Error:
    return Error(msg, hint=hint, id=f"{ID}.{code}")


def _warning(code: str, msg: str, hint: str | None = None) -> Warning:
    return Warning(msg, hint=hint, id=f"{ID}.{code}")


def _reported(problem: ConfigurationError, default_id: str) -> CheckMessage:
    """A settings problem as the check message of its id (``default_id`` when it carries none)."""
    check_id = problem.check_id or f"{ID}.{default_id}"
    level = Warning if check_id.rpartition(".")[2].startswith("W") else Error
    return level(str(problem), hint=problem.hint, id=check_id)


@register(Tags.compatibility)
def check_tasks_q_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check every queue of ``TASKS_Q``."""
    try:
        parsed = parsed_queues()
    except ConfigurationError as exc:
        return [_reported(exc, "E001")]
    messages: list[CheckMessage] = []
    for queue in parsed.values():
        messages.extend(check_parsed_queue(queue))
    return messages


def check_queue(name: str, conf: dict[str, Any]) -> list[CheckMessage]:
    """The check messages of one queue's settings."""
    return check_parsed_queue(parse_queue(name, conf))


def check_parsed_queue(queue: QueueSettings) -> list[CheckMessage]:
    """The check messages of one parsed queue: its settings errors, else its storage's, hub's and consumer's."""
    if queue.errors:
        return [_reported(problem, "E003") for problem in queue.errors]
    storage_class = queue.storage_class
    assert storage_class is not None
    messages = [
        _reported(problem, "E005") for problem in storage_class.check_options(queue.storage_options, where=queue.where)
    ]
    messages.extend(_check_hub_options(queue, storage_class))
    messages.extend(_check_consumer(queue))
    return messages


@register(Tags.database)
def check_tasks_q_tables(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report databases (of those the check was asked about) that lack the tables django-tasks-q needs.

    ``default`` needs every table of the app; another database only the ORM storage's, when a queue keeps its
    messages there (``OPTIONS["using"]`` or ``orm://alias``).
    """
    from django.apps import apps
    from django.db import DEFAULT_DB_ALIAS, connections, router

    if not databases or not apps.is_installed("django_tasks_q") or _inside_migrate():
        return []
    storage_aliases = _orm_storage_aliases()
    models = list(apps.get_app_config("django_tasks_q").get_models())
    from .orm_models import Counter, DeadLetterMessage, KeyValue, QueueMessage, ScheduledMessage

    storage_models = {Counter, DeadLetterMessage, KeyValue, QueueMessage, ScheduledMessage}
    messages: list[CheckMessage] = []
    for alias in databases:
        needed = [
            model
            for model in models
            if (alias == DEFAULT_DB_ALIAS or (alias in storage_aliases and model in storage_models))
            and model._meta.managed
            and not model._meta.proxy
            and router.allow_migrate_model(alias, model)
        ]
        if not needed:
            continue
        connection = connections[alias]
        try:
            with connection.cursor() as cursor:
                existing = {name.lower() for name in connection.introspection.table_names(cursor)}
        except Exception as exc:
            messages.append(_warning("W004", f"database {alias!r}: cannot list its tables: {exc}"))
            continue
        missing = sorted({model._meta.db_table for model in needed} - existing)
        if missing:
            command = "python manage.py migrate" + ("" if alias == DEFAULT_DB_ALIAS else f" --database {alias}")
            messages.append(
                _warning(
                    "W004",
                    f"database {alias!r} lacks django-tasks-q's table(s) {missing}: queues and the admin pages "
                    "that use them fail, and run_tasks refuses to start",
                    f"Run `{command}`.",
                )
            )
    return messages


def _inside_migrate() -> bool:
    """Whether ``manage.py migrate`` runs these checks: it is about to create the tables, so say nothing."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:  # BaseCommand.execute() of the migrate command runs the checks
        if type(frame.f_locals.get("self")).__module__ == "django.core.management.commands.migrate":
            return True
        frame = frame.f_back
    return False


def _orm_storage_aliases() -> set[str]:
    """Database aliases that ORM-storage queues of ``TASKS_Q`` keep their messages in."""
    from .backends.orm import OrmStorage

    try:
        parsed = parsed_queues()
    except ConfigurationError:
        return set()
    return {
        queue.storage_options.get("using") or "default"
        for queue in parsed.values()
        if queue.storage_class is not None and issubclass(queue.storage_class, OrmStorage)
    }


def _check_hub_options(queue: QueueSettings, storage_class: type[BaseStorage]) -> list[CheckMessage]:
    from .hub.queue import TaskQueue
    from .messages.codec import MessageCodec

    where, conf = queue.where, queue.conf
    messages: list[CheckMessage] = []
    serializer = conf.get("SERIALIZER", "json")
    unsafe_unsigned = False
    if conf.get("SIGNING") is False:
        try:
            MessageCodec(serializer=serializer)
        except ConfigurationError as exc:
            unsafe_unsigned = True
            messages.append(
                _error("E007", f"{where}: SERIALIZER {serializer!r} with SIGNING off: {exc}", "Remove SIGNING: False.")
            )
    try:
        hub = TaskQueue(queue.name, storage_class=storage_class, **queue.hub_options)
        if not unsafe_unsigned:
            hub.codec  # noqa: B018  (builds and so validates serializer, compression and size limit)
    except (ConfigurationError, TypeError, ValueError) as exc:
        messages.append(_error("E010", f"{where}: {exc}"))
    features = storage_class.features
    if not conf.get("IMMEDIATE") and Feature.PROCESS_LOCAL in features:
        messages.append(
            _warning(
                "W001",
                f"{where} uses {storage_class.__name__}, which lives inside one process: "
                "run_tasks cannot consume what this process enqueues",
                "Use orm, sqlite, file or redis, or set IMMEDIATE: True (tests, development).",
            )
        )
    elif Feature.RELIABLE not in features and Feature.PROCESS_LOCAL not in features:
        messages.append(
            _warning(
                "W002",
                f"{where}: {storage_class.__name__} has no reliable delivery; a task whose worker dies is lost",
                "Use one of the storages shipped with django-tasks-q, or implement reliable delivery in yours "
                "and declare the feature 'reliable'.",
            )
        )
    return messages


def _check_consumer(queue: QueueSettings) -> list[CheckMessage]:
    from .consumer import ConsumerOptions

    where, name, conf = queue.where, queue.name, queue.conf

    consumer_conf = conf.get("CONSUMER") or {}
    if not isinstance(consumer_conf, dict):
        return [_error("E009", f"{where}['CONSUMER'] must be a dict, got {type(consumer_conf).__name__}")]
    try:
        options = ConsumerOptions.from_dict(consumer_conf, where=f"{where}['CONSUMER']")
    except (ConfigurationError, TypeError) as exc:
        return [_error("E009", str(exc))]
    messages: list[CheckMessage] = []
    lease = conf.get("LEASE", 60.0)
    renew = options.renew_interval
    if renew is not None and isinstance(lease, (int, float)) and lease > 0 and renew * 3 > lease:
        messages.append(
            _error(
                "E008",
                f"{where}: LEASE {lease:g}s is shorter than three renewals of "
                f"CONSUMER['renew_interval'] {renew:g}s",
                "A lease must survive two missed renewals; raise LEASE or renew more often.",
            )
        )
    if not options.periodic and registry_for(name).periodic():
        names = sorted(wrapper.path for wrapper in registry_for(name).periodic())
        messages.append(
            _warning(
                "W003",
                f"{where}: periodic tasks {names} are registered but CONSUMER['periodic'] is False, "
                "so no consumer enqueues them",
                "Remove 'periodic': False, or move the periodic tasks to another queue.",
            )
        )
    return messages
