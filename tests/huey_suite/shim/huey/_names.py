"""How the shim's modules find their names: each huey name points at one object of django_tasks_q.

A shim module holds a table ``{huey_name: "django_tasks_q.module:attribute"}`` and nothing else. Names are
resolved when a test imports them, so a name django_tasks_q does not have yet fails that import alone, with an
error that says where the name was looked for. The shim adds no behaviour: no wrappers, no new methods.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def resolver(module_name: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that looks ``name`` up in ``table`` and imports the object it points at."""

    def __getattr__(name: str) -> Any:
        try:
            target = table[name]
        except KeyError:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r} (the shim maps no such name)")
        if target == "None":
            return None
        module_path, _, attribute = target.partition(":")
        module = importlib.import_module(module_path)
        if not attribute:
            return module
        try:
            return getattr(module, attribute)
        except AttributeError:
            raise AttributeError(
                f"{module_name}.{name} maps to {target}, which django_tasks_q does not have"
            ) from None

    return __getattr__
