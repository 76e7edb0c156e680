"""Which options a storage class takes, for the check that refuses the others before anything is built.

:meth:`BaseStorage.check_options <django_tasks_q.backends.base.BaseStorage.check_options>` uses these: the
options a storage takes are the named parameters of its constructor, and of its parents' constructors as far as
they are handed on with ``**kwargs``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import UnknownOptions

__all__ = ["constructor_options", "refuse_unknown_options"]


def constructor_options(storage_class: type, *, root: type) -> frozenset[str] | None:
    """The keyword arguments the constructor of ``storage_class`` takes besides ``name``; ``None`` for "any".

    The named parameters of ``__init__`` along the class hierarchy, stopping at the first ``__init__`` without
    ``**kwargs`` or at ``root`` (the contract's base class, which refuses whatever reaches it). ``None`` when no
    class stops the chain (a constructor that hands ``**kwargs`` to something that takes anything).
    """
    accepted: set[str] = set()
    for klass in storage_class.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = list(inspect.signature(init).parameters.values())
        accepted |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params) or klass is root:
            return frozenset(accepted - {"self", "name"})
    return None


def refuse_unknown_options(
    storage_class: type, options: Mapping[str, Any], accepted: Iterable[str] | None, *, where: str
) -> list[UnknownOptions]:
    """``[UnknownOptions]`` naming the keys of ``options`` outside ``accepted`` (``None``: any), else ``[]``.

    ``where`` names the settings the options come from (``"TASKS_Q['q']['OPTIONS']"``).
    """
    if accepted is None:
        return []
    accepted = frozenset(accepted)
    unknown = set(options) - accepted
    return [UnknownOptions(where, storage_class, unknown, accepted)] if unknown else []
