"""Django app configuration for django-tasks-q."""

from django.apps import AppConfig


class TasksQConfig(AppConfig):
    """The ``django_tasks_q`` app."""

    name = "django_tasks_q"
    verbose_name = "Tasks"
    default_auto_field = "django.db.models.BigAutoField"
