"""The shop's tasks and hooks, as written for djhuey (only the import lines changed)."""

from django_tasks_q import CancelExecution, crontab
from django_tasks_q.contrib.djhuey import (
    db_periodic_task,
    db_task,
    lock_task,
    on_startup,
    periodic_task,
    pre_execute,
    signal,
    task,
)
from django_tasks_q.signals import SIGNAL_CANCELED, SIGNAL_COMPLETE, SIGNAL_REVOKED

from .models import Event, Order


@task()
def add(a, b):
    return a + b


@db_task(retries=1)
def confirm_order(order_id):
    order = Order.objects.get(pk=order_id)
    order.status = "confirmed"
    order.save()
    return order.number


@db_task()
@lock_task("recount")
def recount():
    confirmed = Order.objects.filter(status="confirmed").count()
    Event.objects.create(kind="recount", detail=str(confirmed))
    return confirmed


@periodic_task(crontab(minute="*"))
def tick():
    Event.objects.create(kind="tick")


@db_periodic_task(crontab(minute="*"))
def heartbeat():
    Event.objects.create(kind="heartbeat")


@periodic_task(crontab(minute="0", hour="3"))
def nightly_report():
    Event.objects.create(kind="report", detail=str(Order.objects.count()))


@on_startup()
def announce_worker():
    Event.objects.create(kind="startup")


@pre_execute()
def skip_cancelled_orders(task):
    if task.name.endswith("confirm_order") and Order.objects.filter(pk=task.args[0], status="cancelled").exists():
        raise CancelExecution()


@signal(SIGNAL_COMPLETE, SIGNAL_CANCELED, SIGNAL_REVOKED)
def journal(signal, task, *args):
    Event.objects.create(kind=signal, detail=task.id)
