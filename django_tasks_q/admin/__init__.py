"""The Django admin of django-tasks-q: queues, schedules, running tasks, history, dead letters, periodic tasks.

Pages (in the app's section of the admin index), each in its own module:

* :mod:`.dashboard` — per queue counts, the last hour and day, consumers alive, charts (:mod:`.charts`);
  also mounts the actions (:mod:`.actions`);
* :mod:`.queue_views` — pending, scheduled, in flight, dead letters;
* :mod:`.history` — task history (a ModelAdmin with a detail page) and consumers;
* :mod:`.task_views` — registered tasks with the "run" form, periodic tasks, locks and rate limits.

Everything reads and acts through the hub (``TaskQueue``), so it works the same on every storage.
"""

from django.contrib import admin

from ..history.models import (
    DeadLetterEntry,
    InFlightTask,
    LockEntry,
    PendingTask,
    PeriodicTask,
    QueueOverview,
    RegisteredTask,
    ScheduledTask,
)
from .dashboard import QueueOverviewAdmin
from .history import ConsumerHeartbeatAdmin, TaskHistoryAdmin
from .queue_views import DeadLetterEntryAdmin, InFlightTaskAdmin, PendingTaskAdmin, ScheduledTaskAdmin
from .task_views import LockEntryAdmin, PeriodicTaskAdmin, RegisteredTaskAdmin

__all__ = [
    "ConsumerHeartbeatAdmin",
    "DeadLetterEntryAdmin",
    "InFlightTaskAdmin",
    "LockEntryAdmin",
    "PendingTaskAdmin",
    "PeriodicTaskAdmin",
    "QueueOverviewAdmin",
    "RegisteredTaskAdmin",
    "ScheduledTaskAdmin",
    "TaskHistoryAdmin",
]

admin.site.register(QueueOverview, QueueOverviewAdmin)
admin.site.register(PendingTask, PendingTaskAdmin)
admin.site.register(ScheduledTask, ScheduledTaskAdmin)
admin.site.register(InFlightTask, InFlightTaskAdmin)
admin.site.register(DeadLetterEntry, DeadLetterEntryAdmin)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
admin.site.register(RegisteredTask, RegisteredTaskAdmin)
admin.site.register(LockEntry, LockEntryAdmin)
from .schedules import ScheduleAdmin  # noqa: E402,F401  (registers the Schedule admin)
