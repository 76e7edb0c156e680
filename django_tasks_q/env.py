"""Read a queue's URL from the environment with django-environ.

.. code-block:: python

    from django_tasks_q import env as tasks_env

    TASKS_Q = {
        "default": tasks_env.queue("TASKS_Q_URL", default="orm://"),
        "emails": tasks_env.queue("EMAILS_QUEUE_URL", default="redis://localhost:6379/0?priority=1",
                                  CONSUMER={"workers": 4}),
    }
"""

from __future__ import annotations

from typing import Any

import environ

from .exceptions import ConfigurationError
from .urls_config import parse_queue_url

_NOT_SET = object()


def queue(var: str = "TASKS_Q_URL", default: Any = _NOT_SET, **settings: Any) -> dict[str, Any]:
    """A queue settings dict ``{"URL": <value of var>, **settings}``.

    The URL is checked at once, so a bad value fails at start-up with the
    variable's name; an unset variable without ``default`` is an error too.
    """
    reader = environ.Env()
    if default is _NOT_SET:
        try:
            url = reader.str(var)
        except environ.ImproperlyConfigured:
            raise ConfigurationError(f"environment variable {var} is not set (expected a queue URL)") from None
    else:
        url = reader.str(var, default=default)
    parse_queue_url(url, where=f"environment variable {var}")
    return {"URL": url, **settings}
