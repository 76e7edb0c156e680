"""The seed's examples run as written (seed: storage-backends.md, "Memory Storage for Testing")."""

from __future__ import annotations

import uuid

from django_tasks_q import BlackHoleHuey, Huey, MemoryHuey, Result, TaskQueue
from django_tasks_q.backends.memory import MemoryStorage
from tests.support.hub import Recorder, drain, new_queue


def test_seed_memory_example_runs_as_written():
    huey = MemoryHuey("test-app", immediate=True)

    @huey.task()
    def add_numbers(a, b):
        return a + b

    result = add_numbers(2, 3)
    assert result() == 5


def test_seed_memory_example_in_one_line():
    huey = MemoryHuey("test-app", immediate=True)

    @huey.task()
    def add_numbers(a, b):
        return a + b

    assert add_numbers(2, 3)() == 5
    assert isinstance(add_numbers(2, 3), Result)
    assert huey.immediate is True
    assert isinstance(huey.storage, MemoryStorage)


def test_seed_development_example_queues_and_a_worker_runs_it():
    huey = new_queue("dev-app")

    @huey.task()
    def debug_task(data):
        return f"Processed: {data}"

    result = debug_task("hello")
    assert result() is None  # not run yet: nothing is stored
    assert len(huey) == 1
    assert drain(huey) == 1
    assert result() == "Processed: hello"
    assert len(huey) == 0


def test_seed_benchmark_black_hole_accepts_and_keeps_nothing():
    benchmark_huey = BlackHoleHuey(f"benchmark-app-{uuid.uuid4().hex[:8]}")
    events = Recorder(benchmark_huey)

    @benchmark_huey.task()
    def work(x):
        return x

    result = work(1)
    assert isinstance(result, Result)
    assert len(benchmark_huey) == 0
    assert benchmark_huey.pending() == []
    assert benchmark_huey.reserve() is None
    assert result() is None
    assert events.signals() == ["enqueued"]


def test_huey_is_the_task_queue():
    assert Huey is TaskQueue
    assert issubclass(MemoryHuey, TaskQueue)
    assert issubclass(BlackHoleHuey, TaskQueue)
