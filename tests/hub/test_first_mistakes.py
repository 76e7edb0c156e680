"""The mistakes of a first hour, each answered by an error that says what to do."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from django_tasks_q.backends.registry import load_storage_class
from django_tasks_q.checks import check_queue
from django_tasks_q.consumer import Consumer, ConsumerOptions
from django_tasks_q.decorators import task
from django_tasks_q.exceptions import (
    ConfigurationError,
    ResultTimeout,
    SerializationError,
    TaskDeadLettered,
)
from tests.support.hub import new_queue, run_next

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ tasks defined where no consumer can import them


def define_in(module: str, **options):
    """Run ``@task()`` on a function whose ``__module__`` is ``module`` (as the shell or a script makes it)."""
    namespace = {"__name__": module, "task": task, "options": options}
    exec(compile("@task(**options)\ndef add(a, b):\n    return a + b\n", "<pasted>", "exec"), namespace)
    return namespace["add"]


@pytest.mark.parametrize(
    ("module", "where"),
    [("django.core.management.commands.shell", "`manage.py shell`"), ("__main__", "a script run directly")],
)
def test_a_task_defined_in_the_shell_or_a_script_is_refused_at_decoration(module: str, where: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        define_in(module)
    message = str(caught.value)
    assert f"task 'add' is defined in {where}" in message
    assert "every call would be dead-lettered as an unknown task of queue 'default'" in message
    assert "tasks.py module of an app listed in INSTALLED_APPS" in message
    assert "from myapp.tasks import add" in message


def test_an_explicit_name_is_the_way_out_for_a_task_the_consumer_registers_itself() -> None:
    from django_tasks_q.conf import registry_for

    wrapper = define_in("__main__", name="scripts.add")
    try:
        assert wrapper.name == wrapper.path == "scripts.add"
    finally:
        registry_for("default").unregister("scripts.add")


# ------------------------------------------------------------------ a dead letter instead of a bare timeout


def test_get_after_a_dead_letter_says_so_with_the_reason_and_where_to_look() -> None:
    q = new_queue()

    @q.task(name="first.add")
    def add(a, b):
        return a + b

    result = add(2, 3)
    q.registry.unregister("first.add")  # the consumer does not know the task (the shell's mistake)
    assert run_next(q)
    with pytest.raises(TaskDeadLettered) as caught:
        result.get(blocking=True, timeout=0.2)
    error = caught.value
    assert isinstance(error, ResultTimeout)  # code that catches timeouts keeps working
    [letter] = q.dead_letters()
    assert (error.reason, error.dead_letter_id) == ("unknown_task", letter.id)
    message = str(error)
    assert f"task {result.id} (first.add) produced no result in 0.2 s because its message was dead-lettered" in message
    assert "(unknown_task: message names task 'first.add', which is not registered" in message
    assert "Dead letters page" in message and letter.id in message


def test_a_plain_timeout_stays_a_plain_timeout() -> None:
    q = new_queue()

    @q.task(name="first.slow")
    def slow():
        return 1

    result = slow()  # never consumed
    with pytest.raises(ResultTimeout) as caught:
        result.get(blocking=True, timeout=0.05)
    assert type(caught.value) is ResultTimeout


# ------------------------------------------------------------------ misconfiguration


def test_the_orm_storage_without_the_app_says_to_add_it_not_to_migrate(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import django
        from django.conf import settings

        settings.configure(
            SECRET_KEY="x" * 50,
            INSTALLED_APPS=["django.contrib.contenttypes"],
            DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {str(tmp_path / "db.sqlite3")!r}}}}},
        )
        django.setup()
        from django_tasks_q.decorators import task

        @task(name="first.add")
        def add(a, b):
            return a + b

        try:
            add(1, 2)
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT)}
    )
    assert done.returncode == 0, done.stderr
    assert "'django_tasks_q' is not in INSTALLED_APPS" in done.stdout
    assert 'Add "django_tasks_q" to INSTALLED_APPS, then run `python manage.py migrate`' in done.stdout


def test_a_model_instance_argument_suggests_passing_its_primary_key() -> None:
    q = new_queue()

    @q.task(name="first.greet")
    def greet(user):
        return user

    with pytest.raises(SerializationError) as caught:
        greet(User(pk=7, username="ada"))
    message = str(caught.value)
    assert "object of type django.contrib.auth.models.User cannot be serialized as JSON" in message
    assert "pass its primary key instead (e.g. user_id=user.pk)" in message
    assert "User.objects.get(pk=...)" in message


def test_an_unknown_backend_suggests_the_near_match_and_lists_the_choices_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_storage_class("rediss", where="TASKS_Q['default']['BACKEND']")
    message = str(caught.value)
    assert "unknown backend 'rediss'; did you mean 'redis'?" in message
    assert message.count("'sqlite'") == 1
    [error] = check_queue("default", {"BACKEND": "sqlit"})
    assert error.id == "django_tasks_q.E003"
    assert "did you mean 'sqlite'?" in error.msg
    assert f"{error.msg} {error.hint or ''}".count("'blackhole'") == 1


def test_an_unknown_backend_far_from_every_alias_gets_the_list_only() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_storage_class("rabbitmq", where="TASKS_Q['default']['BACKEND']")
    assert "did you mean" not in str(caught.value)
    assert "use one of 'blackhole'," in str(caught.value)


def test_the_consumer_warns_about_a_queue_without_tasks(caplog: pytest.LogCaptureFixture) -> None:
    empty = new_queue("empty")
    consumer = Consumer([empty], ConsumerOptions(), install_signal_handlers=False, monitor=False)
    with caplog.at_level(logging.WARNING, logger="django_tasks_q"):
        consumer.start()
        consumer.shutdown()
    [warning] = [r.getMessage() for r in caplog.records if "no task is registered" in r.getMessage()]
    assert warning.startswith(f"queue {empty.name!r}: no task is registered, so every message it receives")
    assert "is the app that holds your tasks.py listed there?" in warning


def test_a_queue_with_tasks_gets_no_such_warning(caplog: pytest.LogCaptureFixture) -> None:
    q = new_queue("full")

    @q.task(name="first.noop")
    def noop():
        return None

    consumer = Consumer([q], ConsumerOptions(), install_signal_handlers=False, monitor=False)
    with caplog.at_level(logging.WARNING, logger="django_tasks_q"):
        consumer.start()
        consumer.shutdown()
    assert not [r for r in caplog.records if "no task is registered" in r.getMessage()]


def run_script(body: str, tmp_path: Path, installed: list[str]) -> str:
    """Run ``body`` in a fresh interpreter with a minimal project on an empty SQLite database; its output."""
    script = textwrap.dedent(
        f"""
        import django
        from django.conf import settings

        settings.configure(
            SECRET_KEY="x" * 50,
            INSTALLED_APPS={installed!r},
            DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {str(tmp_path / "db.sqlite3")!r}}}}},
        )
        django.setup()
        """
    ) + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-u", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout
    return done.stdout


def test_check_database_reports_missing_tables_and_migrate_stays_quiet(tmp_path: Path) -> None:
    apps = ["django.contrib.contenttypes", "django.contrib.auth", "django_tasks_q"]
    body = """
        from django.core.management import call_command
        call_command("check")
        print("---- check --database default")
        call_command("check", "--database", "default")
        print("---- migrate")
        call_command("migrate", "-v", "0")
        print("---- check --database default, after migrate")
        call_command("check", "--database", "default")
    """
    output = run_script(body, tmp_path, apps)
    plain, with_database, migrate, after = output.split("---- ")
    assert "W004" not in plain  # the database checks only run when asked for
    assert "(django_tasks_q.W004) database 'default' lacks django-tasks-q's table(s) [" in with_database
    assert "'django_tasks_q_message'" in with_database and "Run `python manage.py migrate`" in with_database
    assert "W004" not in migrate
    assert "W004" not in after and "no issues" in after


def test_the_orm_storage_without_the_app_fails_the_checks(tmp_path: Path) -> None:
    body = """
        from django.core.checks import run_checks
        from django_tasks_q.checks import check_tasks_q_settings
        for message in check_tasks_q_settings():
            print(message.id, message.msg, message.hint)
    """
    output = run_script(body, tmp_path, ["django.contrib.contenttypes"])
    assert "django_tasks_q.E012 TASKS_Q['default'] uses the ORM storage" in output
    assert "'django_tasks_q' is not in INSTALLED_APPS" in output
