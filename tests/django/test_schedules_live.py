"""Database schedules end to end: the real ``run_tasks`` command in subprocesses (docs/operations.md).

* A running consumer picks up edits of a schedule (its arguments; paused; resumed) without a restart.
* Two consumers of one queue fire every tick of a schedule exactly once, on every persistent storage (the
  tick's marker is a ``put_if_empty`` in the queue's storage), also when both are frozen (SIGSTOP) over
  missed ticks and thawed together, so that both try to catch up the same ticks at the same moment. (Without
  the freeze a tick is rarely raced for: the first consumer to fire it moves ``last_run_at`` on.)

The consumers run with ``tests.live_settings`` (``tests.consumer_settings`` plus the ``tests.live_tasks`` app,
whose schedulable task ``live.beat`` writes a "beat" ledger line with its label and task id). Every process of
a test shares one Django database, a SQLite file copied from a migrated template, where the schedules live;
the test edits them through ``manage.py shell`` with ``full_clean()`` and ``save()``, as the admin does. Which
tick a consumer enqueued comes from its log (``schedule 'NAME' enqueued live.beat for TICK``). Redis is a
private redis-server of the session (``chaos_redis``), not the shared database 15 that other test sessions
flush.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.deployments import (
    Consumer,
    Deployment,
    eventually,
    queue_url,
    stop,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TASK = "live.beat"  # tests/live_tasks.py; never imported here, so it is not registered in this process
ENQUEUED = re.compile(r"schedule '(?P<name>[^']+)' enqueued (?P<task>\S+) for (?P<tick>\S+)$")
WAIT = 30  # seconds: generous, for a loaded machine


@pytest.fixture(params=["redis", "sqlite", "file", "orm"])
def storage(request: pytest.FixtureRequest) -> str:
    """The queue's storage (``redis``: a private redis-server of the session; ``orm``: the shared Django database)."""
    return request.param


def deploy(request: pytest.FixtureRequest, folder: Path, kind: str, lease: float = 2.0) -> Deployment:
    url = queue_url(kind, folder, request.getfixturevalue("chaos_redis").url if kind == "redis" else "")
    shutil.copyfile(request.getfixturevalue("django_sqlite_template"), folder / "django.sqlite3")
    return Deployment(folder, url, lease, migrate=False, DJANGO_SETTINGS_MODULE="tests.live_settings")


@pytest.fixture
def deployments() -> Iterator[list[Deployment]]:
    """Deployments of this test; every consumer is killed afterwards and its log's tail printed."""
    made: list[Deployment] = []
    yield made
    for deployment in made:
        deployment.close()
        for consumer in deployment.consumers:
            tail = "\n".join(consumer.log().splitlines()[-40:])
            print(f"---- {deployment.url} consumer {consumer.pid} (exit {consumer.process.returncode}):\n{tail}")


# ---------------------------------------------------------------------------------------------------- helpers


def shell(deployment: Deployment, code: str) -> Any:
    """Run ``code`` in ``manage.py shell`` of the deployment; returns the JSON it printed last."""
    out = deployment.manage("shell", "--no-imports", "-c", code).stdout
    return json.loads(out.strip().splitlines()[-1])


def create_schedule(deployment: Deployment, name: str, label: str, misfire: str = "once") -> int:
    """A schedule of ``live.beat(label)`` every second; returns its primary key."""
    return shell(
        deployment,
        "import json\n"
        "from django_tasks_q.history.schedules import Schedule\n"
        f"s = Schedule(name={name!r}, task={TASK!r}, args=[{label!r}], interval=1.0, misfire={misfire!r})\n"
        "s.full_clean()\n"
        "s.save()\n"
        "print(json.dumps(s.pk))\n",
    )


def edit_schedule(deployment: Deployment, name: str, **changes: Any) -> float:
    """Change fields of a schedule as the admin does (load, set, ``full_clean()``, ``save()``).

    Returns the time just after the change was committed.
    """
    shell(
        deployment,
        "import json\n"
        "from django_tasks_q.history.schedules import Schedule\n"
        f"s = Schedule.objects.get(name={name!r})\n"
        f"for field, value in json.loads({json.dumps(changes)!r}).items():\n"
        "    setattr(s, field, value)\n"
        "s.full_clean()\n"
        "s.save()\n"
        "print(json.dumps(s.pk))\n",
    )
    return time.time()


def enqueued_ticks(consumers: list[Consumer], name: str) -> list[float]:
    """The ticks of schedule ``name`` the consumers enqueued, as they logged them (epoch seconds)."""
    ticks = []
    for consumer in consumers:
        for line in consumer.log().splitlines():
            match = ENQUEUED.search(line)
            if match and match["name"] == name:
                assert match["task"] == TASK, line
                ticks.append(dt.datetime.fromisoformat(match["tick"]).timestamp())
    return ticks


def beats(deployment: Deployment, label: str | None = None) -> list[dict[str, Any]]:
    """The "beat" ledger lines (of one label, when given), in the order they were written."""
    return [event for event in deployment.events("beat") if label is None or event["label"] == label]


# ---------------------------------------------------------------------------------------------------- the tests


def test_a_running_consumer_picks_up_schedule_edits_without_restart(
    request: pytest.FixtureRequest, deployments: list[Deployment], tmp_path: Path
) -> None:
    deployment = deploy(request, tmp_path, "sqlite")
    deployments.append(deployment)
    consumer = deployment.consumer("--workers", "1")  # one worker: calls run in the order they were enqueued
    create_schedule(deployment, "clock", "clock")  # never edited: shows that the scheduler went on
    create_schedule(deployment, "edited", "v1")
    eventually(lambda: beats(deployment, "v1"), WAIT, what="the schedule fired with its first arguments")

    # New arguments: the calls enqueued from now on carry them.
    edit_schedule(deployment, "edited", args=["v2"])
    eventually(lambda: len(beats(deployment, "v2")) >= 2, WAIT, what="the schedule fired with its new arguments")
    labels = [event["label"] for event in beats(deployment) if event["label"] != "clock"]
    first_v2 = labels.index("v2")
    assert set(labels[:first_v2]) == {"v1"} and set(labels[first_v2:]) == {"v2"}, labels

    # Paused: no tick after the pause is enqueued, while the scheduler goes on (the clock schedule fires).
    paused_at = edit_schedule(deployment, "edited", enabled=False)
    eventually(
        lambda: max(enqueued_ticks([consumer], "clock"), default=0) >= paused_at + 2.5,
        WAIT,
        what="the clock schedule fired 2.5 s after the pause",
    )
    late = [tick for tick in enqueued_ticks([consumer], "edited") if tick >= paused_at]
    assert not late, f"ticks of the paused schedule enqueued after the pause: {late}"
    fired_while_paused = len(enqueued_ticks([consumer], "edited"))

    # Resumed: it fires again.
    edit_schedule(deployment, "edited", enabled=True)
    eventually(
        lambda: len(enqueued_ticks([consumer], "edited")) > fired_while_paused,
        WAIT,
        what="the resumed schedule fired",
    )
    assert consumer.alive, consumer.log()
    stop(consumer)
    assert "Traceback" not in consumer.log()


def test_two_consumers_fire_each_tick_once(
    request: pytest.FixtureRequest, deployments: list[Deployment], tmp_path: Path, storage: str
) -> None:
    deployment = deploy(request, tmp_path, storage, lease=60)  # no lease runs out while the consumers are frozen
    deployments.append(deployment)
    consumers = [deployment.consumer("--workers", "2") for _ in range(2)]
    eventually(
        lambda: all(" starting" in consumer.log() for consumer in consumers), WAIT, what="both consumers started"
    )
    create_schedule(deployment, "every-second", "tick", misfire="catch_up")

    def fired() -> int:
        return len(set(enqueued_ticks(consumers, "every-second")))

    eventually(lambda: fired() >= 3, WAIT, what="three ticks fired")
    # Freeze both consumers while ticks go by, then thaw them together: their next scheduler passes see the
    # same missed ticks at the same moment (catch_up: every one of them is due), the closest race for a tick.
    for _ in range(2):
        before = fired()
        for consumer in consumers:
            consumer.signal_group(signal.SIGSTOP)
        time.sleep(2.5)  # the scenario: two ticks or more are missed (nothing is measured)
        for consumer in consumers:
            consumer.signal_group(signal.SIGCONT)
        eventually(lambda before=before: fired() >= before + 3, WAIT, what="the missed ticks fired")
    assert all(consumer.alive for consumer in consumers)
    for consumer in consumers:
        stop(consumer)

    ticks = enqueued_ticks(consumers, "every-second")
    twice = {tick: n for tick, n in Counter(ticks).items() if n > 1}
    assert not twice, f"ticks enqueued more than once: {twice}"
    # Run what the two left queued (no scheduler: nothing new is enqueued); then each tick ran exactly once.
    drain = deployment.consumer("--burst", "--no-periodic")
    assert drain.wait(60) == 0, drain.log()
    ran = [event["id"] for event in beats(deployment, "tick")]
    assert len(ran) == len(set(ran)), f"a call ran twice: {Counter(ran).most_common(3)}"
    assert len(ran) == len(ticks), f"{len(ticks)} ticks enqueued, {len(ran)} calls ran"
