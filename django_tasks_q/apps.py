"""Django app configuration for django-tasks-q."""

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class TasksQConfig(AppConfig):
    """The ``django_tasks_q`` app: registers system checks and imports every installed app's ``tasks`` module."""

    name = "django_tasks_q"
    verbose_name = "Tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register checks and the settings-change hook; autodiscover ``tasks`` modules."""
        from . import checks, conf  # noqa: F401  (registration side effects)

        autodiscover_modules("tasks")
