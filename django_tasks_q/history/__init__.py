"""Task history and metrics: what happened to each task call, and how the queues are doing.

``models``
    The Django models: task history, consumer heartbeats, per-minute queue counters, the admin's anchors, and
    the ``TASKS_Q_HISTORY*`` settings (``django_tasks_q.models`` imports the models, so Django finds them).
``recorder``
    :class:`~django_tasks_q.history.recorder.HistoryRecorder`: receives the hub's signals into an in-memory
    buffer and writes it from a background thread.
``writers``
    The statements the recorder writes with: history rows in batches, per-minute counters, pruning.
``health``
    One health snapshot per queue, read through the hub, for ``tasks_q_health`` and the metrics.
``metrics``
    Prometheus metrics (an endpoint and a ``prometheus_client`` collector), published as
    :mod:`django_tasks_q.metrics`.
``schedules``
    Schedules stored in the database and edited in the admin: the model, its bounds, and the dispatch the
    consumer's scheduler runs on every pass.

Nothing is imported here: importing one module of the package (the metrics, say) does not import the models.
"""
