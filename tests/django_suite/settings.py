"""Settings for Django's ``tests/tasks`` modules run against TasksQBackend.

Django's test classes set ``TASKS`` themselves (with the backend path swapped to ours); the queue behind
the backend is chosen per module by ``tests.django_suite.plugin``.
"""

SECRET_KEY = "django-tasks-q-django-suite-not-a-secret"  # a fixed value, for tests only
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_tasks_q"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TASKS = {"default": {"BACKEND": "django_tasks_q.tasks_backend.TasksQBackend"}}
TASKS_Q = {"default": {"BACKEND": "memory", "OPTIONS": {"block_timeout": 0}}}
