"""Reading the five cron fields: the syntax of one field, the aliases such as ``@daily``, and time zones."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo

_ITEM_RE = re.compile(r"(?:(?P<star>\*)|(?P<start>\d+)(?:-(?P<end>\d+))?)(?:/(?P<step>\d+))?")

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
"""The aliases :meth:`Crontab.parse` reads, and the five fields each stands for."""

TzArg = ZoneInfo | tzinfo | str | None
"""What a ``tz`` argument may be: a zone, a zone name, or ``None`` for each datetime's own wall clock."""


@dataclass(frozen=True)
class Field:
    """One cron field: its name, its accepted numbers and how ``*`` expands."""

    name: str
    low: int
    high: int  # highest number accepted in the text (7 for day_of_week)
    star_high: int  # highest value ``*`` covers (6 for day_of_week)
    note: str = ""

    def describe_range(self) -> str:
        """The accepted numbers, for an error message."""
        return f"{self.name} accepts {self.low}-{self.high}{self.note}"

    def normalise(self, number: int) -> int:
        """The number as matched: only day_of_week has an alias, 7 is Sunday like 0."""
        return number % 7 if self.name == "day_of_week" else number


FIELDS = (
    Field("minute", 0, 59, 59),
    Field("hour", 0, 23, 23),
    Field("day", 1, 31, 31),
    Field("month", 1, 12, 12),
    Field("day_of_week", 0, 7, 6, " where 0 and 7 are Sunday"),
)
"""The five fields, in the order they are written."""


def _field_error(field: Field, value: object, reason: str) -> ValueError:
    return ValueError(f"invalid crontab {field.name} {value!r}: {reason}")


def parse_field(field: Field, value: object) -> tuple[str, frozenset[int]]:
    """Parse one field's value into (normalised text, set of matching numbers); raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _field_error(field, value, f"expected an int or a str, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise _field_error(field, value, "the value is empty")

    items = [item.strip() for item in text.split(",")]
    numbers: set[int] = set()
    for item in items:
        if not item:
            raise _field_error(field, value, "empty item in the comma-separated list")
        match = _ITEM_RE.fullmatch(item)
        if match is None:
            raise _field_error(
                field,
                value,
                f"cannot parse {item!r}; expected *, */n, n, m-n or m-n/k, or a comma list of them",
            )
        star, start, end, step = match.group("star", "start", "end", "step")
        step_size = 1
        if step is not None:
            step_size = int(step)
            if step_size < 1:
                raise _field_error(field, value, f"the step in {item!r} must be at least 1")
            if start is not None and end is None:
                raise _field_error(
                    field, value, f"{item!r}: a step needs '*' or a range before it, such as */5 or 0-30/5"
                )
            if star is not None and field.name == "day_of_week":
                raise _field_error(
                    field,
                    value,
                    f"{item!r} restarts every Sunday, so it does not mean every {step_size} days; list the days "
                    "(such as '0,3,6') or use a range with a step (such as '1-5/2')",
                )
        if star is not None:
            first, last = field.low, field.star_high
        else:
            first = int(start)
            last = int(end) if end is not None else first
            for number in (first, last):
                if not field.low <= number <= field.high:
                    raise _field_error(field, value, f"{number} is out of range ({field.describe_range()})")
            if first > last:
                raise _field_error(field, value, f"the range {item!r} is reversed ({first} > {last})")
        numbers.update(field.normalise(number) for number in range(first, last + 1, step_size))
    return ",".join(items), frozenset(numbers)


def resolve_tz(tz: object) -> tzinfo | None:
    """The zone a ``tz`` argument names; ``ValueError`` for an unknown name or another type."""
    if tz is None or isinstance(tz, tzinfo):
        return tz
    if isinstance(tz, str):
        try:
            return ZoneInfo(tz)
        except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"invalid crontab tz {tz!r}: unknown time zone") from None
    raise ValueError(
        f"invalid crontab tz {tz!r}: expected a zoneinfo.ZoneInfo, a time zone name or None, "
        f"got {type(tz).__name__}"
    )
