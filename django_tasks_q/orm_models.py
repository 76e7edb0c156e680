"""The tables of the ORM storage (``django_tasks_q.backends.orm.OrmStorage``).

Five tables, each row tagged with the queue name it belongs to, so several queues share the tables without
seeing each other's rows:

``django_tasks_q_message`` (:class:`QueueMessage`)
    The ready queue *and* the in-flight reservations: ``state`` says which. A reservation keeps its row (and its
    id), so giving it back restores its place in the queue. Claim order: ``priority`` descending, then ``id``.
``django_tasks_q_schedule`` (:class:`ScheduledMessage`)
    Messages waiting for their ``eta``.
``django_tasks_q_deadletter`` (:class:`DeadLetterMessage`)
    Messages given up on, with the reason.
``django_tasks_q_keyvalue`` (:class:`KeyValue`)
    Results, locks, revocations and other bookkeeping, with an optional expiry time.
``django_tasks_q_counter`` (:class:`Counter`)
    Counters (rate limits, chords), with an optional expiry time.

Every point in time is stored as epoch seconds in a float column (``FloatField``: double precision on every
database), exactly as the storage contract passes them around, so nothing is rounded on the way in or out.

Only the storage writes these tables. Read them freely (the admin does, through the hub), but change them
through the storage's methods: they keep each step atomic and the lease tokens consistent.
"""

from __future__ import annotations

from typing import Any

from django.db import models

__all__ = [
    "Counter",
    "DeadLetterMessage",
    "ExactCharField",
    "KeyValue",
    "QueueMessage",
    "ScheduledMessage",
]

NAME_MAX_LENGTH = 191
"""Queue names are indexed; 191 characters is the most a utf8mb4 index column takes on every MySQL/MariaDB."""


class ExactCharField(models.CharField):
    """A ``CharField`` that compares exactly (case, accents and trailing spaces count) on every database.

    PostgreSQL and SQLite compare text exactly already. MySQL and MariaDB compare with the table's collation,
    usually case- and accent-insensitive (``utf8mb4_unicode_ci``), under which the queue names ``"Mail"`` and
    ``"mail"`` would share rows; there the column gets a binary, no-pad collation instead.
    """

    def db_parameters(self, connection: Any) -> dict[str, Any]:
        """Add the binary collation on MySQL/MariaDB (unless ``db_collation`` chose one)."""
        params = super().db_parameters(connection)
        if connection.vendor == "mysql" and not params.get("collation"):
            is_mariadb = getattr(connection, "mysql_is_mariadb", False)
            params["collation"] = "utf8mb4_nopad_bin" if is_mariadb else "utf8mb4_0900_bin"
        return params


# ====================================================================================================
# ORM storage tables (owned by django_tasks_q/backends/sql/; change them only together with it)
# ====================================================================================================


class QueueMessage(models.Model):
    """A message in the ready queue (``state="ready"``) or reserved by a worker (``state="in_flight"``)."""

    READY = "ready"
    IN_FLIGHT = "in_flight"
    STATES = [(READY, "ready"), (IN_FLIGHT, "in flight")]

    id = models.BigAutoField(primary_key=True)
    queue = ExactCharField(max_length=NAME_MAX_LENGTH, help_text="The queue (storage name) it belongs to.")
    data = models.BinaryField(help_text="The message's bytes, exactly as enqueued.")
    priority = models.IntegerField(
        default=0, help_text="Higher runs first; FIFO (by id) within one priority."
    )
    state = models.CharField(max_length=16, choices=STATES, default=READY)
    token = models.CharField(
        max_length=32, blank=True, default="", help_text="Fencing token of the current reservation."
    )
    attempts = models.IntegerField(default=0, help_text="How many times it has been claimed.")
    deadline = models.FloatField(null=True, blank=True, help_text="Lease deadline (epoch seconds).")
    reserved_at = models.FloatField(null=True, blank=True, help_text="When the current lease began.")
    created_at = models.FloatField(help_text="When it was enqueued (epoch seconds).")

    class Meta:
        db_table = "django_tasks_q_message"
        verbose_name = "queued message (ORM storage)"
        indexes = [
            # the claim: WHERE queue = ? AND state = 'ready' ORDER BY priority DESC, id LIMIT 1
            models.Index(fields=["queue", "state", "-priority", "id"], name="tasks_q_msg_claim"),
            # the reaper and the in-flight listing: WHERE queue = ? AND state = 'in_flight' ORDER BY deadline
            models.Index(fields=["queue", "state", "deadline"], name="tasks_q_msg_lease"),
        ]

    def __str__(self) -> str:
        return f"{self.queue}#{self.pk} ({self.state})"


class QueueRow(models.Model):
    """Columns every ORM storage table but the message table shares: the id and the queue the row belongs to."""

    id = models.BigAutoField(primary_key=True)
    queue = ExactCharField(max_length=NAME_MAX_LENGTH)

    class Meta:
        abstract = True


class ScheduledMessage(QueueRow):
    """A message that becomes ready at ``eta``."""

    data = models.BinaryField()
    priority = models.IntegerField(default=0, help_text="The priority it enters the queue with.")
    eta = models.FloatField(help_text="When it becomes ready (epoch seconds).")
    created_at = models.FloatField()

    class Meta:
        db_table = "django_tasks_q_schedule"
        verbose_name = "scheduled message (ORM storage)"
        indexes = [models.Index(fields=["queue", "eta", "id"], name="tasks_q_sched_eta")]

    def __str__(self) -> str:
        return f"{self.queue}#{self.pk} at {self.eta}"


class DeadLetterMessage(QueueRow):
    """A message the system gave up on (see ``BaseStorage.bury`` and ``requeue_expired``)."""

    data = models.BinaryField()
    priority = models.IntegerField(null=True, blank=True, help_text="Used when it is requeued.")
    reason = models.CharField(max_length=NAME_MAX_LENGTH, help_text="A short code, e.g. bad_signature.")
    detail = models.TextField(blank=True, default="")
    attempts = models.IntegerField(default=0)
    failed_at = models.FloatField(help_text="When it became a dead letter (epoch seconds).")
    created_at = models.FloatField(null=True, blank=True, help_text="When it was first enqueued, if known.")

    class Meta:
        db_table = "django_tasks_q_deadletter"
        verbose_name = "dead letter (ORM storage)"
        indexes = [models.Index(fields=["queue", "failed_at"], name="tasks_q_dead_failed")]

    def __str__(self) -> str:
        return f"{self.queue}#{self.pk} ({self.reason})"


class KeyValue(QueueRow):
    """A value of the key/value area: a result (``is_result``), a lock, a revocation ...

    Keys can be of any length: the unique index is on ``key_hash`` (SHA-256 of the key, hex), which also makes
    lookups exact whatever the database's collation.
    """

    key_hash = models.CharField(max_length=64)
    key = models.TextField()
    value = models.BinaryField()
    is_result = models.BooleanField(default=False)
    expires_at = models.FloatField(null=True, blank=True, help_text="Gone from then on (epoch seconds).")
    updated_at = models.FloatField()

    class Meta:
        db_table = "django_tasks_q_keyvalue"
        verbose_name = "stored value (ORM storage)"
        constraints = [models.UniqueConstraint(fields=["queue", "key_hash"], name="tasks_q_kv_unique_key")]
        indexes = [
            models.Index(fields=["queue", "is_result"], name="tasks_q_kv_results"),
            models.Index(fields=["queue", "expires_at"], name="tasks_q_kv_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.queue}:{self.key}"


class Counter(QueueRow):
    """A counter changed only by ``incr`` (a window of a rate limit ends at ``expires_at``)."""

    key_hash = models.CharField(max_length=64)
    key = models.TextField()
    value = models.BigIntegerField(default=0)
    expires_at = models.FloatField(null=True, blank=True)

    class Meta:
        db_table = "django_tasks_q_counter"
        verbose_name = "counter (ORM storage)"
        constraints = [
            models.UniqueConstraint(fields=["queue", "key_hash"], name="tasks_q_counter_unique_key")
        ]
        indexes = [models.Index(fields=["queue", "expires_at"], name="tasks_q_counter_expiry")]

    def __str__(self) -> str:
        return f"{self.queue}:{self.key}={self.value}"
