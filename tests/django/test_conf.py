"""Settings → queues: TASKS_Q, URLs, the environment helper and module-level decorators."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.test import override_settings

from django_tasks_q import env as tasks_env
from django_tasks_q.backends.blackhole import BlackHoleStorage
from django_tasks_q.backends.memory import MemoryStorage
from django_tasks_q.conf import queues, registry_for
from django_tasks_q.decorators import task
from django_tasks_q.exceptions import ConfigurationError, UnknownQueue
from django_tasks_q.urls_config import parse_queue_url


@pytest.mark.parametrize(
    ("url", "alias", "options"),
    [
        ("redis://localhost:6379/0", "redis", {"url": "redis://localhost:6379/0"}),
        ("rediss://:secret@cache.example.com:6380/2", "redis", {"url": "rediss://:secret@cache.example.com:6380/2"}),
        ("redis+priority://h/1", "priority-redis", {"url": "redis://h/1"}),
        ("redis://h/1?priority=1", "priority-redis", {"url": "redis://h/1"}),
        ("redis://h/1?expire_time=60", "redis-expire", {"url": "redis://h/1", "expire_time": 60}),
        ("redis://h?priority=true&expire_time=5", "priority-redis-expire", {"url": "redis://h", "expire_time": 5}),
        ("redis://h/0?health_check_interval=30&client_name=web", "redis",
         {"url": "redis://h/0", "health_check_interval": 30, "client_name": "web"}),
        ("sqlite:///tasks.db", "sqlite", {"filename": "tasks.db"}),
        ("sqlite:////var/data/tasks.db?fsync=1&strict_fifo=yes", "sqlite",
         {"filename": "/var/data/tasks.db", "fsync": 1, "strict_fifo": True}),
        ("file:///var/tasks?levels=3", "file", {"path": "/var/tasks", "levels": 3}),
        ("orm://", "orm", {}),
        ("orm://replica", "orm", {"using": "replica"}),
        ("memory://", "memory", {}),
        ("blackhole://", "blackhole", {}),
    ],
)
def test_parse_queue_url(url: str, alias: str, options: dict[str, Any]) -> None:
    assert parse_queue_url(url) == (alias, options)


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("localhost:6379", "is not a queue URL"),
        ("amqp://guest@localhost", "unknown URL scheme 'amqp'"),
        ("redis://", "names no host"),
        ("redis://host:port/0", "cannot parse"),
        ("sqlite://", "names no file"),
        ("sqlite://server/x.db", "sqlite URL takes no host"),
        ("file://", "names no folder"),
        (None, "is not a queue URL"),
    ],
)
def test_bad_queue_urls_name_the_setting(url: Any, text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"TASKS_Q\['x'\]\['URL'\]") as info:
        parse_queue_url(url, where="TASKS_Q['x']['URL']")
    assert text in str(info.value)


def test_env_helper_reads_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_QUEUE_URL", "redis://cache:6379/3?priority=1")
    assert tasks_env.queue("MY_QUEUE_URL", CONSUMER={"workers": 2}) == {
        "URL": "redis://cache:6379/3?priority=1",
        "CONSUMER": {"workers": 2},
    }
    monkeypatch.delenv("MY_QUEUE_URL")
    assert tasks_env.queue("MY_QUEUE_URL", default="orm://") == {"URL": "orm://"}
    with pytest.raises(ConfigurationError, match="environment variable MY_QUEUE_URL is not set"):
        tasks_env.queue("MY_QUEUE_URL")
    monkeypatch.setenv("MY_QUEUE_URL", "mongodb://x")
    with pytest.raises(ConfigurationError, match="environment variable MY_QUEUE_URL: unknown URL scheme"):
        tasks_env.queue("MY_QUEUE_URL")


def test_default_queue_is_orm_when_tasks_q_is_absent() -> None:
    from django_tasks_q.conf import configured_queues

    with override_settings():
        from django.conf import settings

        del settings.TASKS_Q
        assert configured_queues() == {"default": {"BACKEND": "orm"}}


@override_settings(TASKS_Q={"default": {"BACKEND": "memory", "IMMEDIATE": True}, "bulk": {"URL": "blackhole://"}})
def test_queues_are_built_lazily_and_cached() -> None:
    default = queues["default"]
    assert default is queues["default"]
    assert default.immediate is True
    assert isinstance(default.storage, MemoryStorage)
    assert isinstance(queues["bulk"].storage, BlackHoleStorage)
    assert queues.names() == ["default", "bulk"]
    assert "bulk" in queues and "other" not in queues
    with pytest.raises(UnknownQueue, match="no queue named 'other'"):
        queues["other"]


def test_queue_is_rebuilt_when_settings_change() -> None:
    with override_settings(TASKS_Q={"default": {"BACKEND": "memory", "IMMEDIATE": True, "LEASE": 5}}):
        first = queues["default"]
        assert first.lease == 5
    with override_settings(TASKS_Q={"default": {"BACKEND": "memory", "IMMEDIATE": True, "LEASE": 9}}):
        second = queues["default"]
        assert second.lease == 9
    assert first is not second


def test_hub_options_and_storage_options_reach_the_hub() -> None:
    conf = {
        "BACKEND": "memory",
        "OPTIONS": {"block_timeout": 0.25},
        "RESULTS": False,
        "STORE_NONE": True,
        "UTC": False,
        "MAX_ATTEMPTS": 3,
        "RESULT_TTL": 60,
        "MAX_MESSAGE_SIZE": 4096,
    }
    with override_settings(TASKS_Q={"q": conf}):
        hub = queues["q"]
        assert (hub.results, hub.store_none, hub.utc, hub.max_attempts, hub.result_ttl) == (False, True, False, 3, 60)
        assert hub.codec.max_size == 4096
        assert hub.storage.block_timeout == 0.25


def test_unknown_key_is_a_clear_error() -> None:
    with (
        override_settings(TASKS_Q={"q": {"BACKEND": "memory", "OPTONS": {}}}),
        pytest.raises(ConfigurationError, match=r"TASKS_Q\['q'\]: unknown key\(s\) \['OPTONS'\]"),
    ):
        queues["q"]


def test_concurrent_first_access_builds_one_hub() -> None:
    with override_settings(TASKS_Q={"default": {"BACKEND": "memory", "IMMEDIATE": True}}):
        seen: list[Any] = []
        threads = [threading.Thread(target=lambda: seen.append(queues["default"])) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(hub) for hub in seen}) == 1


@task(queue="conf-tests", retries=2)
def multiply(a: int, b: int) -> int:
    return a * b


def test_module_level_task_follows_the_configured_queue() -> None:
    assert "tests.django.test_conf.multiply" in registry_for("conf-tests")
    with override_settings(TASKS_Q={"conf-tests": {"BACKEND": "memory", "IMMEDIATE": True}}):
        assert multiply(6, 7)() == 42
        assert multiply.queue is queues["conf-tests"]
        assert multiply.retries == 2
    with override_settings(TASKS_Q={"conf-tests": {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}}}):
        result = multiply(2, 3)
        assert result() is None
        assert [t.args for t in queues["conf-tests"].pending()] == [(2, 3)]
    with override_settings(TASKS_Q={"other": {"BACKEND": "memory"}}), pytest.raises(UnknownQueue):
        multiply(1, 1)


def test_immediate_is_never_implied_by_debug() -> None:
    with override_settings(DEBUG=True, TASKS_Q={"q": {"BACKEND": "memory"}}):
        assert queues["q"].immediate is False


def test_public_api_exports_app_level_decorators_and_queues() -> None:
    import django_tasks_q

    assert django_tasks_q.task is task
    assert django_tasks_q.queues is queues
    assert callable(django_tasks_q.periodic_task) and callable(django_tasks_q.lock_task)


def test_module_level_lock_and_rate_limit_follow_the_configured_queue() -> None:
    from django_tasks_q import RateLimitExceeded, TaskLockedException, lock_task, rate_limit

    lock = lock_task("nightly-import", queue="conf-tests")
    limit = rate_limit("api", 2, 60, queue="conf-tests")
    with override_settings(TASKS_Q={"conf-tests": {"BACKEND": "memory", "IMMEDIATE": True}}):
        with lock:
            assert lock.is_locked()
            with pytest.raises(TaskLockedException), lock:
                pass
        assert not lock.is_locked()

        @limit
        def call_api() -> str:
            return "ok"

        assert [call_api(), call_api()] == ["ok", "ok"]
        with pytest.raises(RateLimitExceeded):
            call_api()


def test_hooks_and_receivers_survive_a_rebuilt_queue() -> None:
    seen: list[str] = []
    with override_settings(TASKS_Q={"conf-tests": {"BACKEND": "memory", "IMMEDIATE": True, "LEASE": 5}}):
        hub = queues["conf-tests"]
        hub.pre_execute(name="conf-test-hook")(lambda task: seen.append(f"pre {task.args}"))
        receiver = hub.signal("complete")(lambda signal, task, *args: seen.append(f"{signal} {task.args}"))
    try:
        with override_settings(TASKS_Q={"conf-tests": {"BACKEND": "memory", "IMMEDIATE": True, "LEASE": 7}}):
            rebuilt = queues["conf-tests"]
            assert rebuilt is not hub
            assert multiply(2, 2)() == 4
        assert seen == ["pre (2, 2)", "complete (2, 2)"]
    finally:
        hub.unregister_pre_execute("conf-test-hook")
        hub.disconnect_signal(receiver)


def test_the_storage_table_names_each_storage_once_and_its_huey_class_and_schemes_agree() -> None:
    import pickle

    from django.utils.module_loading import import_string

    import django_tasks_q
    from django_tasks_q.backends.registry import ALIASES, STORAGES, URL_SCHEMES, load_storage_class
    from django_tasks_q.hub import huey
    from django_tasks_q.huey_settings import HUEY_CLASSES

    assert len({entry.class_path for entry in STORAGES}) == len(STORAGES)
    assert len(set(ALIASES)) == len(ALIASES) == len([entry for entry in STORAGES if entry.alias])
    assert len(set(URL_SCHEMES)) == len(URL_SCHEMES)
    for entry in STORAGES:
        storage_class = load_storage_class(entry.alias or entry.class_path, where="test")
        assert import_string(entry.class_path) is storage_class  # the public dotted path users write
        for scheme in entry.url_schemes:
            url = "redis://h/0" if scheme.startswith("redis") else f"{scheme}:///x"
            assert parse_queue_url(url.replace("redis", scheme, 1))[0] == entry.alias
        if entry.huey_class:
            hub_class = getattr(django_tasks_q, entry.huey_class)
            assert hub_class is getattr(huey, entry.huey_class) and issubclass(hub_class, django_tasks_q.TaskQueue)
            assert (hub_class.__module__, hub_class.__qualname__) == ("django_tasks_q.hub.huey", entry.huey_class)
            assert pickle.loads(pickle.dumps(hub_class)) is hub_class
            assert entry.class_path in (hub_class.__doc__ or "")
            assert import_string(hub_class.storage_path) is storage_class
            assert hub_class.build_storage_at_init is entry.built_with_queue
            # djhuey's huey_class setting translates to the alias; a storage without one has no translation.
            assert HUEY_CLASSES.get(f"huey.{entry.huey_class}") == entry.alias
    # Every huey-named class the package exports comes from the table, and the type checker's names match it.
    exported = {name for name in django_tasks_q.__all__ if name.endswith("Huey") and name != "Huey"}
    assert exported == set(huey.QUEUE_CLASSES) == {entry.huey_class for entry in STORAGES if entry.huey_class}
    assert exported == {name for name in huey.__all__ if name.endswith("Huey")}


def test_reading_the_storage_table_imports_no_redis_storage() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; import django_tasks_q.backends.registry as r; r.by_alias('redis'); r.by_scheme('rediss'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis' or m == 'django_tasks_q.backends.redis'))"
    )
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": root})
    assert done.stdout.strip() == "[]"


def test_settings_are_parsed_once_with_the_check_id_of_each_mistake() -> None:
    from django_tasks_q.checks import check_queue
    from django_tasks_q.conf import parse_queue

    for conf, check_id in [
        ({"BACKEND": "memory", "WORKERS": 1}, "django_tasks_q.E002"),
        ({"BACKEND": "rabbit"}, "django_tasks_q.E003"),
        ({"URL": "ftp://x"}, "django_tasks_q.E004"),
    ]:
        parsed = parse_queue("q", conf)
        [error] = parsed.errors
        assert error.check_id == check_id
        [message] = check_queue("q", conf)
        assert (message.id, message.msg, message.hint) == (check_id, str(error), error.hint)
        with pytest.raises(ConfigurationError, match="TASKS_Q\\['q'\\]"):
            parsed.storage()
    parsed = parse_queue("q", {"URL": "memory://?block_timeout=0", "OPTIONS": {"block_timeout": 1}, "LEASE": 5})
    assert parsed.storage() == (MemoryStorage, {"block_timeout": 1})
    assert dict(parsed.hub_options) == {"lease": 5}
