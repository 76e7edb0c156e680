"""Django models of django-tasks-q.

Each group of models lives in its own module and is imported here, so that Django (and ``makemigrations``)
finds them all in the ``django_tasks_q`` app:

* ``django_tasks_q/history/models.py``: task history, heartbeats, per-minute counters, admin anchors;
* ``django_tasks_q/orm_models.py``: the ORM storage's tables (used by ``django_tasks_q/backends/orm.py`` and ``backends/sql/``).
* ``django_tasks_q/history/schedules.py``: schedules stored in the database (edited in the admin).
"""

from .history.models import *  # noqa: F403
from .history.schedules import Schedule
from .orm_models import Counter, DeadLetterMessage, KeyValue, QueueMessage, ScheduledMessage

__all__ = ["Counter", "DeadLetterMessage", "KeyValue", "QueueMessage", "Schedule", "ScheduledMessage"]
