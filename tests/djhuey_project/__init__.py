"""A small project written as a djhuey user writes one, moved to django-tasks-q.

What differs from the same project on huey is only where names come from:

* ``from huey.contrib.djhuey import ...`` → ``from django_tasks_q.contrib.djhuey import ...``
* ``from huey import crontab`` / ``from huey.exceptions import ...`` / ``from huey.signals import ...`` →
  ``from django_tasks_q import crontab, CancelExecution`` / ``from django_tasks_q.signals import ...``
* the app providing ``run_huey`` in ``INSTALLED_APPS``: ``"huey.contrib.djhuey"`` → ``"django_tasks_q"``

The ``HUEY`` setting (``huey_class`` included) and the task code are huey's, unchanged. Paths come from the
environment so that tests can give each run its own files: ``DJHUEY_PROJECT_DB`` (Django's database) and
``DJHUEY_PROJECT_QUEUE`` (the SqliteHuey file).
"""
