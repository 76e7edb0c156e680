"""Orders, and a journal of what the task hooks saw."""

from django.db import models


class Order(models.Model):
    """An order that a task confirms."""

    number = models.CharField(max_length=20)
    status = models.CharField(max_length=20, default="new")


class Event(models.Model):
    """One line of the journal written by the hooks and tasks."""

    kind = models.CharField(max_length=30)
    detail = models.CharField(max_length=200, blank=True)
