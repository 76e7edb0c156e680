"""The public path of the Prometheus metrics, kept for ``urls.py`` and exporters: the code is in
:mod:`django_tasks_q.history.metrics`.

.. code-block:: python

    urlpatterns += [path("metrics/tasks", include("django_tasks_q.metrics"))]
    REGISTRY.register(django_tasks_q.metrics.TasksQCollector())
"""

from .history.metrics import (
    Family,
    Histogram,
    TasksQCollector,
    families,
    metrics_view,
    render_metrics,
    urlpatterns,
)

__all__ = ["Family", "Histogram", "TasksQCollector", "families", "metrics_view", "render_metrics", "urlpatterns"]
