"""``run_huey``: huey's consumer flags mapped onto ``run_tasks``, and the djhuey-style project of
``tests/djhuey_project`` run end to end by the real command in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.base import CommandError
from django.test import override_settings

from django_tasks_q.management.commands.run_huey import Command
from django_tasks_q.management.commands.run_tasks import Command as RunTasksCommand
from tests.support.deployments import eventually

REPO = Path(__file__).resolve().parents[2]
FLAGS_HUEY = {
    "huey_class": "huey.MemoryHuey",
    "name": "flags",
    "consumer": {"workers": 5, "max_delay": 7.0, "flush_locks": True, "verbose": False},
}


def mapped(*argv: str) -> tuple[Command, dict]:
    """The ``run_tasks`` options ``run_huey argv`` runs with."""
    command = Command()
    options = vars(command.create_parser("manage.py", "run_huey").parse_args(list(argv)))
    return command, command.run_tasks_options(command.huey_options(options), options["verbosity"])


@pytest.fixture
def flags_huey():
    with override_settings(HUEY=FLAGS_HUEY):
        yield


def test_each_huey_flag_maps_onto_its_run_tasks_option(flags_huey) -> None:
    command, options = mapped(
        "-w", "3", "-k", "process", "-d", "0.5", "-m", "4", "-b", "1.5", "-c", "2", "-C", "-f",
        "-M", "10", "-s", "5", "-n",
    )
    assert set(options) >= set(vars(RunTasksCommand().create_parser("manage.py", "run_tasks").parse_args([])))
    assert {key: options[key] for key in (
        "queues", "workers", "worker_type", "initial_delay", "max_delay", "backoff", "health_check_interval",
        "max_tasks", "scheduler_interval", "periodic", "flush_locks", "reload",
    )} == {
        "queues": ["flags"], "workers": 3, "worker_type": "process", "initial_delay": 0.5, "max_delay": 4.0,
        "backoff": 1.5, "health_check_interval": 2.0, "max_tasks": 10, "scheduler_interval": 5.0,
        "periodic": False, "flush_locks": True, "reload": False,
    }
    consumer = command._options_for("flags", options)
    assert (consumer.workers, consumer.worker_type, consumer.initial_delay, consumer.max_delay) == (3, "process", 0.5, 4)
    assert (consumer.backoff, consumer.health_check_interval, consumer.max_tasks) == (1.5, 2, 10)
    assert (consumer.scheduler_interval, consumer.periodic, consumer.check_worker_health) == (5, False, False)


def test_huey_setting_consumer_keys_apply_and_flags_override_them(flags_huey) -> None:
    command, options = mapped()
    consumer = command._options_for("flags", options)
    assert (consumer.workers, consumer.max_delay, consumer.check_worker_health) == (5, 7.0, True)
    assert options["flush_locks"] is True  # HUEY['consumer']['flush_locks']
    assert options["verbosity"] == 0  # HUEY['consumer']['verbose'] False: huey's quiet
    command, options = mapped("-w", "2", "-V")
    assert command._options_for("flags", options).workers == 2
    assert options["verbosity"] == 3


@pytest.mark.parametrize(("argv", "verbosity"), [((), 1), (("-V",), 3), (("--huey-verbose",), 3), (("-q",), 0),
                                                 (("-v", "2"), 2), (("--quiet",), 0)])
def test_logging_flags_set_the_verbosity(argv: tuple[str, ...], verbosity: int) -> None:
    with override_settings(HUEY={"huey_class": "huey.MemoryHuey", "name": "flags"}):
        assert mapped(*argv)[1]["verbosity"] == verbosity


def test_extra_locks_flush_too(flags_huey) -> None:
    with override_settings(HUEY={"huey_class": "huey.MemoryHuey", "name": "flags"}):
        assert mapped()[1]["flush_locks"] is False
        assert mapped("-L", "a, b")[1]["flush_locks"] is True
        assert mapped("--extra-locks", "a")[1]["flush_locks"] is True


def test_greenlet_workers_are_refused_by_name(flags_huey) -> None:
    with pytest.raises(CommandError, match="worker type 'greenlet' does not exist here"):
        mapped("-k", "greenlet")


def test_the_djhuey_queue_is_the_one_consumed() -> None:
    assert mapped()[1]["queues"] == ["default"]
    with override_settings(TASKS_Q={"emails": {"BACKEND": "memory"}}):
        assert mapped()[1]["queues"] == ["emails"]


# ---------------------------------------------------------------------------- the djhuey project, end to end


def project_env(folder: Path) -> dict[str, str]:
    """The environment of the shop project's processes: its settings, and files of this test only."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.djhuey_project.settings",
        DJHUEY_PROJECT_DIR=str(folder),
        PYTHONPATH=str(REPO),
    )
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run ``django-admin`` with the project's settings; fail the test on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-m", "django", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


def shop(env: dict[str, str], *args: str):
    """The shop command's JSON answer."""
    return json.loads(manage(env, "shop", *args).stdout)


LEAVE_STALE_LOCK = """
import os, django
django.setup()
from django_tasks_q.contrib.djhuey import lock_task
lock_task("recount").__enter__()
os._exit(0)  # a process killed while it held the lock
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_djhuey_project_runs_under_run_huey(tmp_path: Path) -> None:
    env = project_env(tmp_path)
    manage(env, "migrate", "-v", "0")
    subprocess.run([sys.executable, "-c", LEAVE_STALE_LOCK], cwd=REPO, env=env, check=True, timeout=60)

    revoked = shop(env, "order", "R1", "--delay", "4")
    restored = shop(env, "order", "R2", "--delay", "4")
    shop(env, "revoke", revoked["task"])
    shop(env, "revoke", restored["task"])
    assert shop(env, "restore", restored["task"]) is True
    for number in ("N1", "N2", "N3"):
        shop(env, "order", number)
    cancelled = shop(env, "order", "C1", "--status", "cancelled")
    added = shop(env, "add", "2", "3")

    log = tmp_path / "consumer.log"
    with open(tmp_path / "consumer.out", "w") as output:
        consumer = subprocess.Popen(
            [sys.executable, "-m", "django", "run_huey", "-w", "2", "-k", "thread", "-d", "0.05", "-m", "0.2",
             "-b", "1.2", "-s", "1", "-c", "1", "-f", "-l", str(log)],
            cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        assert shop(env, "result", added) == 5

        def settled():
            state = shop(env, "state")
            orders = state["orders"]
            done = all(orders[n] == "confirmed" for n in ("N1", "N2", "N3", "R2"))
            revoked_seen = ["revoked", revoked["task"]] in state["events"]
            return done and revoked_seen and state

        state = eventually(settled, 60, interval=0.5, what="orders confirmed and R1 revoked")
        assert state["orders"]["R1"] == "new" and state["orders"]["C1"] == "cancelled"
        events = state["events"]
        assert ["canceled", cancelled["task"]] in events  # pre_execute raised CancelExecution
        assert ["complete", added] in events  # the signal receiver saw the add task finish
        assert events.count(["startup", ""]) == 2  # on_startup: once per worker
        assert ["tick", ""] in events and ["heartbeat", ""] in events  # periodic_task and db_periodic_task

        # recount enters lock_task("recount"), which a killed process left held: -f released it at start.
        assert shop(env, "result", shop(env, "recount")) == 4
    finally:
        consumer.send_signal(signal.SIGTERM)
        status = consumer.wait(60)
    out = (tmp_path / "consumer.out").read_text()
    assert status == 0, out
    assert out.count("django_tasks_q.W101") == 1  # one warning at start-up, naming the TASKS_Q equivalent
    assert "TASKS_Q = {'shop': {'BACKEND': 'sqlite'" in out
    assert "flushed locks ['recount']" in log.read_text()
    assert "stopped" in log.read_text()
