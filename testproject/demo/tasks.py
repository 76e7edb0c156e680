"""Demo tasks: something to watch in the admin while ``scripts/demo`` runs.

django-tasks-q imports the ``tasks`` module of every installed app, so the
consumer (``run_tasks``) knows these tasks without further set-up.
"""

from __future__ import annotations

import logging
import random
import time

from django_tasks_q import crontab
from django_tasks_q.decorators import periodic_task, task

logger = logging.getLogger(__name__)


@task()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@task()
def multiply(a: int, b: int) -> int:
    """Multiply two numbers (the second step of the demo pipeline)."""
    return a * b


@task()
def square(n: int) -> int:
    """Square a number (a member of the demo chord)."""
    return n * n


@task()
def total(values: list[int]) -> int:
    """Sum the results of a chord."""
    return sum(values)


@task(context=True)
def crunch(steps: int, task=None) -> str:
    """Sleep for ``steps`` half-seconds, reporting progress after each."""
    for step in range(1, steps + 1):
        time.sleep(0.5)
        task.report_progress(step / steps, f"step {step} of {steps}")
    return f"crunched {steps} steps"


@task(retries=2, retry_delay=3, context=True)
def flaky_fetch(url: str, task=None) -> str:
    """Fail on the first try, then succeed on a retry (watch it in the admin's history)."""
    if task.retries == 2:
        raise ConnectionError(f"could not reach {url} (first try always fails in the demo)")
    return f"fetched {url}"


@task()
def always_fails(reason: str) -> None:
    """Fail for good (shows a traceback in the admin)."""
    raise ValueError(reason)


@periodic_task(crontab(minute="*"))
def heartbeat() -> str:
    """Runs every minute."""
    logger.info("demo heartbeat")
    return "alive"


@task(schedulable=True)
def send_digest(team: str) -> str:
    """A task an operator may schedule from the admin's Schedules page (``demo_setup`` adds one schedule)."""
    return f"digest sent to {team}"


# Created when the module is imported, so that every process (the admin's too) knows this lock and this
# rate limit by name and the Locks page lists them even while nobody holds them.
report_lock = add.queue.lock_task("demo-nightly-report", ttl=300)
partner_api = add.queue.rate_limit("demo-partner-api", limit=10, per=60)


@task(context=True)
def nightly_report(seconds: int, task=None) -> str:
    """Hold the ``demo-nightly-report`` lock while working; a second call while it runs fails as locked."""
    with report_lock:
        for second in range(1, seconds + 1):
            time.sleep(1)
            task.report_progress(second / seconds, f"{second} of {seconds} s")
    return "report written"


@task(unique=True, unique_ttl=600)
def refresh_cache(region: str) -> str:
    """At most one waiting call per region: a second call while one waits is dropped (its key is held)."""
    return f"cache of {region} refreshed"


@task(retries=3, retry_delay=10)
def call_partner_api(order: int) -> str:
    """At most 10 calls a minute to the partner's API; past that the call fails and is retried later."""
    with partner_api:
        return f"order {order} sent"


def enqueue_demo_batch() -> None:
    """Enqueue one of each kind of demo work."""
    from django_tasks_q import chord

    add(random.randint(1, 9), random.randint(1, 9))
    crunch(random.randint(2, 6))
    flaky_fetch("https://example.com/feed")
    add.queue.enqueue(add.s(2, 3).then(multiply, 10))
    chord([square.s(n) for n in range(1, 6)], total.s())
    if random.random() < 0.3:
        always_fails("the demo fails now and then on purpose")
    add.schedule((40, 2), delay=20)
    nightly_report(random.randint(10, 20))
    refresh_cache.schedule(("eu-west",), delay=60)
    call_partner_api(random.randint(1000, 9999))
