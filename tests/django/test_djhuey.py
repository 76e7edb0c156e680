"""``django_tasks_q.contrib.djhuey``: djhuey's names, ``close_db``, the ``HUEY`` setting translated, its checks."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from django.core import checks
from django.db import connection
from django.test import override_settings

from django_tasks_q import CancelExecution, MemoryHuey, RedisHuey, SqliteHuey, crontab
from django_tasks_q.conf import configured_queues, queues
from django_tasks_q.contrib import djhuey
from django_tasks_q.exceptions import ConfigurationError, TaskLockedException
from django_tasks_q.huey_settings import HUEY_CLASSES, huey_translation, translate_huey_setting
from django_tasks_q.signals import SIGNAL_COMPLETE

SHIM = Path(__file__).parents[1] / "huey_suite" / "shim" / "huey" / "contrib" / "djhuey.py"
MEMORY_HUEY = {"huey_class": "huey.MemoryHuey", "name": "djhuey-tests", "immediate": True}


def shim_names() -> list[str]:
    """The names the huey-suite shim maps onto this module (the tuple in its TABLE)."""
    tree = ast.parse(SHIM.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension) and isinstance(node.iter, ast.Tuple):
            return [element.value for element in node.iter.elts]
    raise AssertionError(f"no name tuple in {SHIM}")


def translate(value, *, debug=False, default_name="dbname"):
    return translate_huey_setting(value, debug=debug, default_name=default_name)


@pytest.fixture
def memory_huey():
    """The djhuey queue on a MemoryHuey in immediate mode, as a djhuey project's test settings have it."""
    with override_settings(HUEY=MEMORY_HUEY):
        yield djhuey.HUEY


# ---------------------------------------------------------------------------- names


def test_every_name_the_huey_suite_shim_maps_exists() -> None:
    names = shim_names()
    assert len(names) >= 20
    missing = [name for name in names if not hasattr(djhuey, name)]
    assert missing == []
    assert set(names) | {"on_commit_task", "queue_name"} == set(djhuey.__all__)


def test_huey_is_the_djhuey_queue_as_currently_configured(memory_huey) -> None:
    assert djhuey.queue_name() == "djhuey-tests"
    assert memory_huey.name == "djhuey-tests" and memory_huey.immediate
    assert type(memory_huey.storage).__name__ == "MemoryStorage"
    with override_settings(HUEY={**MEMORY_HUEY, "name": "other-name"}):
        assert djhuey.HUEY.name == "other-name"
    assert djhuey.HUEY.name == "djhuey-tests"


def test_without_huey_the_djhuey_queue_is_default_or_the_first_tasks_q_queue() -> None:
    assert djhuey.queue_name() == "default"
    with override_settings(TASKS_Q={"emails": {"BACKEND": "memory"}, "default": {"BACKEND": "memory"}}):
        assert djhuey.queue_name() == "default"
    with override_settings(TASKS_Q={"emails": {"BACKEND": "memory"}, "reports": {"BACKEND": "memory"}}):
        assert djhuey.queue_name() == "emails"


def test_task_result_and_revocation_by_id(memory_huey) -> None:
    @djhuey.task(retries=1, retry_delay=5)
    def multiply(a, b):
        return a * b

    assert multiply.queue_name == "djhuey-tests" and multiply.retries == 1 and multiply.retry_delay == 5
    call = multiply(6, 7)
    assert djhuey.result(call.id) == 42
    assert djhuey.result(call.id) is None  # read once, as in huey

    memory_huey.immediate = False
    try:
        later = multiply.schedule((2, 3), delay=3600)
        assert memory_huey.execute(memory_huey.dequeue()) is None  # taken before its eta: moved to the schedule
        djhuey.revoke_by_id(later.id)
        assert djhuey.is_revoked(later.task)
        assert djhuey.restore_by_id(later.id) is True
        assert not djhuey.is_revoked(later.task)
        assert [task.id for task in djhuey.scheduled()] == [later.id]
        djhuey.revoke_all(multiply)
        assert djhuey.is_revoked(multiply)
        assert djhuey.restore_all(multiply) is True
        pending = djhuey.enqueue(multiply.s(1, 1))
        djhuey.revoke(pending.task)
        assert djhuey.restore(pending.task) is True
    finally:
        memory_huey.immediate = True


def test_hooks_and_signals_register_on_the_djhuey_queue(memory_huey) -> None:
    seen = []

    @djhuey.task()
    def greet(name):
        return f"hello {name}"

    @djhuey.pre_execute()
    def refuse_bob(task):
        if task.args == ("bob",):
            raise CancelExecution()

    @djhuey.post_execute()
    def after(task, value, exc):
        seen.append(("post", value))

    @djhuey.signal(SIGNAL_COMPLETE)
    def completed(signal, task, *args):
        seen.append((signal, task.args))

    @djhuey.on_startup()
    def starting():
        seen.append("startup")

    @djhuey.on_shutdown()
    def stopping():
        seen.append("shutdown")

    try:
        assert djhuey.result(greet("ann").id) == "hello ann"
        assert djhuey.result(greet("bob").id) is None
        memory_huey.run_startup_hooks()
        memory_huey.run_shutdown_hooks()
        assert len(seen) == 4
        assert set(seen) == {("post", "hello ann"), ("complete", ("ann",)), "startup", "shutdown"}
        assert djhuey.disconnect_signal(completed, SIGNAL_COMPLETE)
    finally:
        for unregister, hook in (
            (memory_huey.unregister_pre_execute, refuse_bob),
            (memory_huey.unregister_post_execute, after),
            (memory_huey.unregister_on_startup, starting),
            (memory_huey.unregister_on_shutdown, stopping),
        ):
            unregister(hook)


def test_periodic_tasks_belong_to_the_djhuey_queue(memory_huey) -> None:
    @djhuey.periodic_task(crontab(minute="15"), name="djhuey-tests.quarter")
    def quarter():
        return "q"

    @djhuey.db_periodic_task(crontab(minute="45"), name="djhuey-tests.three-quarters")
    def three_quarters():
        return "tq"

    at_15 = dt.datetime(2026, 1, 1, 10, 15, tzinfo=dt.UTC)
    assert [task.name for task in memory_huey.read_periodic(at_15)] == ["djhuey-tests.quarter"]
    assert three_quarters.call_local() == "tq"
    memory_huey.registry.unregister("djhuey-tests.quarter")
    memory_huey.registry.unregister("djhuey-tests.three-quarters")


def test_lock_task_is_known_to_the_queue_as_soon_as_declared(memory_huey) -> None:
    lock = djhuey.lock_task("djhuey-tests-report")
    assert "djhuey-tests-report" in memory_huey.known_locks

    @lock
    def report():
        return "done"

    with lock:
        assert lock.is_locked()
        with pytest.raises(TaskLockedException):
            report()
    assert report() == "done"
    with lock:
        assert lock.clear() is True
    assert not lock.is_locked()


@pytest.mark.django_db(transaction=True)
def test_on_commit_task_enqueues_only_when_the_transaction_commits(memory_huey) -> None:
    from django.db import transaction

    @djhuey.on_commit_task()
    def shout(word):
        return word.upper()

    with transaction.atomic():
        pending = shout("hey")
        assert djhuey.result(pending.id) is None
    assert djhuey.result(pending.id) == "HEY"
    assert shout.call_local("x") == "X"


# ---------------------------------------------------------------------------- close_db and db_task


@pytest.mark.django_db(transaction=True)
def test_db_task_closes_old_connections_before_and_after_outside_immediate_mode(memory_huey) -> None:
    """Django marks each connection it has vetted: ``health_check_done`` falls back to False when vetted again."""
    seen = []

    def probe():
        seen.append(connection.health_check_done)
        connection.ensure_connection()
        connection.health_check_done = True

    guarded = djhuey.close_db(probe)
    connection.ensure_connection()
    connection.health_check_done = True
    memory_huey.immediate = False
    try:
        guarded()
    finally:
        memory_huey.immediate = True
    assert seen == [False] and connection.health_check_done is False

    seen.clear()
    connection.health_check_done = True
    guarded()  # immediate: the caller's connection (and transaction) is left alone
    assert seen == [True] and connection.health_check_done is True


def test_db_task_is_a_task_whose_call_local_is_the_plain_function(memory_huey) -> None:
    def archive(n):
        return n + 1

    wrapper = djhuey.db_task(retries=2)(archive)
    assert wrapper.call_local is archive
    assert (wrapper.name, wrapper.path) == ("archive", f"{archive.__module__}.{archive.__qualname__}")
    assert wrapper.retries == 2
    assert djhuey.result(wrapper(1).id) == 2


# ---------------------------------------------------------------------------- the HUEY setting translated


def test_every_documented_dict_key_is_translated() -> None:
    pool = object()
    translation = translate(
        {
            "huey_class": "huey.PriorityRedisExpireHuey",
            "name": "my-app",
            "results": False,
            "store_none": True,
            "utc": False,
            "immediate": False,
            "serializer": "pickle",
            "compression": True,
            "blocking": True,
            "expire_time": 600,
            "connection": {
                "host": "redis.internal",
                "port": 6380,
                "db": 3,
                "password": "pw",
                "connection_pool": pool,
                "read_timeout": 2,
                "url": "redis://redis.internal:6380/3",
            },
            "consumer": {
                "workers": 4,
                "worker_type": "process",
                "initial_delay": 0.2,
                "backoff": 1.5,
                "max_delay": 5.0,
                "scheduler_interval": 2,
                "periodic": False,
                "check_worker_health": False,
                "health_check_interval": 3,
                "max_tasks": 100,
                "flush_locks": True,
                "extra_locks": "a,b",
                "logfile": "/tmp/huey.log",
                "verbose": True,
                "simple_log": True,
            },
        }
    )
    assert translation.problems == []
    assert translation.tasks_q() == {
        "my-app": {
            "BACKEND": "priority-redis-expire",
            "RESULTS": False,
            "STORE_NONE": True,
            "UTC": False,
            "IMMEDIATE": False,
            "SERIALIZER": "pickle",
            "COMPRESSION": True,
            "OPTIONS": {
                "blocking": True,
                "expire_time": 600,
                "host": "redis.internal",
                "port": 6380,
                "db": 3,
                "password": "pw",
                "connection_pool": pool,
                "read_timeout": 2,
                "url": "redis://redis.internal:6380/3",
            },
            "CONSUMER": {
                "workers": 4,
                "worker_type": "process",
                "initial_delay": 0.2,
                "backoff": 1.5,
                "max_delay": 5.0,
                "scheduler_interval": 2,
                "periodic": False,
                "check_worker_health": False,
                "health_check_interval": 3,
                "max_tasks": 100,
            },
        }
    }
    assert translation.command_options == {
        "flush_locks": True,
        "extra_locks": "a,b",
        "logfile": "/tmp/huey.log",
        "verbose": True,
        "simple_log": True,
    }
    assert not translation.immediate_from_debug


@pytest.mark.parametrize(("huey_class", "alias"), sorted(HUEY_CLASSES.items()))
def test_every_huey_class_has_its_storage(huey_class: str, alias: str) -> None:
    translation = translate({"huey_class": huey_class})
    assert translation.queue["BACKEND"] == alias and translation.problems == []


def test_djhuey_defaults_redis_the_database_name_and_immediate_from_debug() -> None:
    translation = translate({}, debug=True, default_name="/srv/db.sqlite3")
    assert translation.tasks_q() == {"/srv/db.sqlite3": {"BACKEND": "redis", "IMMEDIATE": True}}
    assert translation.immediate_from_debug
    assert translate({}, debug=False).queue["IMMEDIATE"] is False
    assert translate({"always_eager": True}, debug=False).queue["IMMEDIATE"] is True
    assert translate({"use_zlib": True}).queue["COMPRESSION"] is True


def test_storage_parameters_at_the_top_level_and_our_own_queue_classes() -> None:
    sqlite = translate({"huey_class": "huey.SqliteHuey", "filename": "/tmp/q.db", "strict_fifo": True})
    assert sqlite.queue["OPTIONS"] == {"filename": "/tmp/q.db", "strict_fifo": True}
    files = translate({"huey_class": "django_tasks_q.FileHuey", "path": "/tmp/q"})
    assert (files.queue["BACKEND"], files.queue["OPTIONS"]) == ("file", {"path": "/tmp/q"})
    custom = translate({"huey_class": SqliteHuey})
    assert custom.queue["BACKEND"] == "sqlite"


@pytest.mark.parametrize(
    ("setting", "where"),
    [
        ({"huey_class": "huey.contrib.sql_huey.SqlHuey"}, "HUEY['huey_class']"),
        ({"huey_class": "huey.PostgresHuey"}, "HUEY['huey_class']"),
        ({"huey_class": "collections.OrderedDict"}, "HUEY['huey_class']"),
        ({"huey_class": 42}, "HUEY['huey_class']"),
        ({"immediate_use_memory": False}, "HUEY['immediate_use_memory']"),
        ({"store_intermediate_errors": False}, "HUEY['store_intermediate_errors']"),
        ({"huey_class": "huey.FileHuey", "blocking": True}, "HUEY['blocking']"),
        ({"connection": {"hots": "typo"}}, "HUEY['connection']['hots']"),
        ({"connection": "redis://x"}, "HUEY['connection']"),
        ({"consumer": {"worker_type": "greenlet"}}, "HUEY['consumer']['worker_type']"),
        ({"consumer": {"workerz": 2}}, "HUEY['consumer']['workerz']"),
        ({"consumer": ["workers"]}, "HUEY['consumer']"),
        ({"name": ""}, "HUEY['name']"),
    ],
)
def test_a_key_with_no_equivalent_is_reported_and_left_out(setting: dict, where: str) -> None:
    translation = translate(setting)
    assert [problem_where for problem_where, _why in translation.problems] == [where]
    assert "hots" not in translation.queue.get("OPTIONS", {})
    assert "worker_type" not in translation.queue.get("CONSUMER", {})


def test_a_queue_instance_is_translated() -> None:
    redis = translate(RedisHuey("inst", results=False, host="h", port=1))
    assert redis.tasks_q() == {"inst": {"BACKEND": "redis", "OPTIONS": {"host": "h", "port": 1}, "RESULTS": False}}
    memory = translate(MemoryHuey("mem", immediate=True))
    assert memory.tasks_q() == {"mem": {"BACKEND": "memory", "IMMEDIATE": True}}
    no_memory = translate(MemoryHuey("mem", immediate_use_memory=False))
    assert [where for where, _ in no_memory.problems] == ["HUEY.immediate_use_memory"]
    with pytest.raises(ConfigurationError, match="HUEY must be a dict"):
        translate("redis://localhost")


def test_an_instance_of_huey_itself_is_translated_by_its_class_path() -> None:
    """A settings module that still builds ``huey.RedisHuey(...)``: its class path and attributes are read."""
    huey_like = type("RedisHuey", (), {"__module__": "huey.api"})()
    huey_like.__dict__.update(
        name="legacy", results=True, store_none=False, utc=True, immediate=False, storage_kwargs={"db": 2}
    )
    translation = translate(huey_like)
    assert translation.problems == []
    assert translation.tasks_q() == {
        "legacy": {
            "BACKEND": "redis",
            "OPTIONS": {"db": 2},
            "RESULTS": True,
            "STORE_NONE": False,
            "UTC": True,
            "IMMEDIATE": False,
        }
    }
    unknown = type("PostgresHuey", (), {"__module__": "huey.api"})()
    unknown.__dict__.update(name="pg", storage_kwargs={}, results=True, store_none=False, utc=True)
    assert [where for where, _ in translate(unknown).problems] == ["HUEY"]


def test_conf_runs_on_the_translation_only_without_tasks_q(tmp_path) -> None:
    setting = {"huey_class": "huey.SqliteHuey", "name": "shop", "filename": str(tmp_path / "q.db")}
    with override_settings(HUEY=setting):
        assert list(configured_queues()) == ["shop"]
        assert type(queues["shop"].storage).__name__ == "SqliteStorage"
        assert queues["shop"].immediate is False
        with override_settings(DEBUG=True):
            assert queues["shop"].immediate is True  # djhuey's immediate = DEBUG, re-read on change
        with override_settings(TASKS_Q={"default": {"BACKEND": "memory"}}):
            assert list(configured_queues()) == ["default"]
    assert huey_translation() is None
    assert list(configured_queues()) == ["default"]


# ---------------------------------------------------------------------------- checks


def _check_ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_one_warning_names_the_tasks_q_equivalent() -> None:
    with override_settings(HUEY={"huey_class": "huey.MemoryHuey", "name": "m", "immediate": True}):
        messages = [m for m in checks.run_checks(tags=[checks.Tags.compatibility]) if m.id.startswith("django_tasks_q.")]
    assert _check_ids(messages) == ["django_tasks_q.W101"]
    assert "TASKS_Q = {'m': {'BACKEND': 'memory', 'IMMEDIATE': True}}" in messages[0].msg


def test_the_warning_says_when_immediate_comes_from_debug() -> None:
    with override_settings(HUEY={"huey_class": "huey.MemoryHuey", "name": "m"}, DEBUG=True):
        messages = [m for m in checks.run_checks(tags=[checks.Tags.compatibility]) if m.id == "django_tasks_q.W101"]
    assert "'IMMEDIATE': True" in messages[0].msg and "DEBUG" in messages[0].hint


def test_each_key_with_no_equivalent_is_an_error_naming_it() -> None:
    setting = {
        "huey_class": "huey.MemoryHuey",
        "immediate": True,
        "store_intermediate_errors": True,
        "consumer": {"worker_type": "greenlet"},
    }
    with override_settings(HUEY=setting):
        messages = [m for m in checks.run_checks(tags=[checks.Tags.compatibility]) if m.id.startswith("django_tasks_q.")]
    errors = [m for m in messages if m.id == "django_tasks_q.E101"]
    assert [m.msg.split(" ")[0] for m in errors] == [
        "HUEY['store_intermediate_errors']",
        "HUEY['consumer']['worker_type']",
    ]
    assert _check_ids(messages).count("django_tasks_q.W101") == 1


def test_a_huey_setting_of_the_wrong_type_is_an_error() -> None:
    with override_settings(HUEY="redis://localhost"):
        assert "django_tasks_q.E102" in _check_ids(checks.run_checks(tags=[checks.Tags.compatibility]))


def test_huey_beside_tasks_q_is_ignored_with_a_warning() -> None:
    with override_settings(HUEY={"name": "x"}, TASKS_Q={"default": {"BACKEND": "orm"}}):
        ids = _check_ids(checks.run_checks(tags=[checks.Tags.compatibility]))
        assert list(configured_queues()) == ["default"]
    assert "django_tasks_q.W102" in ids and "django_tasks_q.W101" not in ids
