"""Queue URLs: the one-string form of a queue's storage (``TASKS_Q = {"default": {"URL": ...}}``).

=================================================  ===========================================
URL                                                storage
=================================================  ===========================================
``redis://[:password@]host[:port][/db]``           Redis (``rediss://`` for TLS)
``redis+priority://...`` or ``redis://...?priority=1``  priority Redis
``redis://...?expire_time=3600``                   expiring Redis (with ``priority=1``: both)
``sqlite:///relative.db``, ``sqlite:////abs.db``    SQLite file
``file:///var/tasks``                              file system
``orm://`` / ``orm://alias``                       Django ORM table (on database ``alias``)
``memory://``, ``blackhole://``                    memory, black hole
=================================================  ===========================================

Other query parameters become storage options: ``true``/``yes``/``on`` and
``false``/``no``/``off`` become booleans, numbers (``1``, ``0.5``) become numbers,
anything else stays text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from .backends.registry import URL_SCHEMES, by_scheme
from .exceptions import ConfigurationError

_E004 = "django_tasks_q.E004"


def _coerce(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def _error(message: str) -> ConfigurationError:
    return ConfigurationError(message, check_id=_E004)


def parse_queue_url(url: str, *, where: str = "URL") -> tuple[str, dict[str, Any]]:
    """Split a queue URL into a backend alias and storage options.

    Raises :class:`ConfigurationError` naming ``where`` (the setting) when the
    URL cannot be used (system check ``django_tasks_q.E004``).
    """
    if not isinstance(url, str) or "://" not in url:
        raise _error(f"{where}: {url!r} is not a queue URL (expected scheme://...; one of {URL_SCHEMES})")
    try:
        parts = urlsplit(url)
        _ = parts.port  # validates the port
    except ValueError as exc:
        raise _error(f"{where}: cannot parse {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    entry = by_scheme(scheme)
    if entry is None:
        raise _error(f"{where}: unknown URL scheme {scheme!r} in {url!r}; expected one of {URL_SCHEMES}")
    options = {key: _coerce(value) for key, value in parse_qsl(parts.query, keep_blank_values=False)}
    alias = entry.alias
    assert alias is not None  # every storage with URL schemes has an alias
    storage_options = _SCHEME_OPTIONS.get(alias)
    if storage_options is None:
        return alias, options
    return storage_options(url, parts, options, where)


def _sqlite(url: str, parts: SplitResult, options: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    path = unquote(parts.path)
    if parts.netloc:
        raise _error(f"{where}: sqlite URL takes no host; write sqlite:///file.db or sqlite:////abs.db")
    filename = path[1:] if path.startswith("/") else path
    if not filename:
        raise _error(f"{where}: sqlite URL {url!r} names no file")
    return "sqlite", {"filename": filename, **options}


def _file(url: str, parts: SplitResult, options: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    path = unquote(parts.path)
    if not path:
        raise _error(f"{where}: file URL {url!r} names no folder")
    return "file", {"path": path, **options}


def _orm(url: str, parts: SplitResult, options: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    alias = parts.netloc
    return "orm", ({"using": alias} if alias else {}) | options


def _redis(url: str, parts: SplitResult, options: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    scheme = parts.scheme.lower()
    priority = scheme.endswith("+priority") or bool(options.pop("priority", False))
    expiring = "expire_time" in options
    alias = {
        (False, False): "redis",
        (True, False): "priority-redis",
        (False, True): "redis-expire",
        (True, True): "priority-redis-expire",
    }[(priority, expiring)]
    base_scheme = scheme.split("+", 1)[0]
    rest = url.split("://", 1)[1].split("?", 1)[0]
    if not rest or rest.startswith("/"):
        raise _error(f"{where}: Redis URL {url!r} names no host")
    return alias, {"url": f"{base_scheme}://{rest}", **options}


_SCHEME_OPTIONS: dict[str, Callable[[str, SplitResult, dict[str, Any], str], tuple[str, dict[str, Any]]]] = {
    "redis": _redis,
    "priority-redis": _redis,
    "sqlite": _sqlite,
    "file": _file,
    "orm": _orm,
}
"""How the URL of a storage (by the alias its scheme names) becomes options; the others take query options only."""
