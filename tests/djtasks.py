"""Tasks written only against Django's ``django.tasks`` API (used by test_tasks_backend)."""

from __future__ import annotations

try:
    from django.tasks import task
except ImportError:  # Django 5.2 with the django-tasks backport
    from django_tasks import task  # type: ignore[no-redef]


@task()
def add(a: int, b: int) -> int:
    return a + b


@task(takes_context=True)
def which_attempt(context, label: str) -> dict:
    return {"label": label, "attempt": context.attempt, "id": context.task_result.id}


@task()
def explode() -> None:
    raise RuntimeError("kaboom")


@task(priority=50, queue_name="other")
def prioritised() -> str:
    return "done"


@task()
async def async_double(n: int) -> int:
    return n * 2


@task()
def leave() -> None:
    raise SystemExit("leaving from inside a task")


@task()
def interrupt() -> None:
    raise KeyboardInterrupt("interrupted inside a task")
