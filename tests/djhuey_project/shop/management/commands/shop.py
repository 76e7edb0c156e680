"""``manage.py shop ACTION ...``: what the shop's views would do, from the command line (prints JSON)."""

import json

from django.core.management.base import BaseCommand

from django_tasks_q.contrib.djhuey import restore_by_id, result, revoke_by_id

from ...models import Event, Order
from ...tasks import add, confirm_order, recount


class Command(BaseCommand):
    help = "Place orders, enqueue tasks, revoke and restore them, read results and the journal."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["add", "order", "recount", "revoke", "restore", "result", "state"])
        parser.add_argument("values", nargs="*")
        parser.add_argument("--delay", type=float, default=0)
        parser.add_argument("--status", default="new")

    def handle(self, action, values, delay, status, **options):
        if action == "add":
            out = add(int(values[0]), int(values[1])).id
        elif action == "order":
            order = Order.objects.create(number=values[0], status=status)
            call = confirm_order.schedule((order.pk,), delay=delay) if delay else confirm_order(order.pk)
            out = {"order": order.pk, "task": call.id}
        elif action == "recount":
            out = recount().id
        elif action == "revoke":
            revoke_by_id(values[0])
            out = "revoked"
        elif action == "restore":
            out = restore_by_id(values[0])
        elif action == "result":
            out = result(values[0], blocking=True, timeout=60)
        else:
            out = {
                "orders": {order.number: order.status for order in Order.objects.all()},
                "events": [[event.kind, event.detail] for event in Event.objects.order_by("pk")],
            }
        self.stdout.write(json.dumps(out))
