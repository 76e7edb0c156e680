"""Django's own ``tests/tasks`` modules, run against TasksQBackend (see ``run.py``)."""
