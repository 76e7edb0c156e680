"""Benchmarks of django-tasks-q side by side with huey (see ``benchmarks/run.py`` and ``docs/performance.md``)."""
