"""Cron-style schedules for periodic tasks, with huey's ``crontab()`` semantics.

``crontab()`` takes one argument per cron field and returns a :class:`Crontab`, a callable that tells
whether a datetime falls on the schedule (seconds are ignored)::

    crontab()                                        # every minute
    crontab(minute="*/5")                            # every five minutes
    crontab(minute=0, hour="9-17", day_of_week="1-5")  # on the hour, 09:00-17:00, Monday to Friday
    crontab(minute=30, hour=2, day=1)                # 02:30 on the first of every month
    crontab(minute=0, hour=9, tz="Europe/Paris")     # 09:00 Paris time, all year round

Field syntax
------------
Every field takes an ``int`` or a ``str`` made of one item or a comma-separated list of items:

=============  ==============================================  =========================
item           meaning                                         example (hour field)
=============  ==============================================  =========================
``*``          every value of the field                        ``"*"``: 0, 1, ..., 23
``*/n``        every n-th value, from the field's first one    ``"*/6"``: 0, 6, 12, 18
``n``          exactly n                                       ``"9"``
``m-n``        m to n inclusive                                ``"9-12"``: 9, 10, 11, 12
``m-n/k``      every k-th value from m to n                    ``"8-18/4"``: 8, 12, 16
``a,b,...``    any of the items                                ``"0,12,20-22"``
=============  ==============================================  =========================

Ranges: ``minute`` 0-59, ``hour`` 0-23, ``day`` (of the month) 1-31, ``month`` 1-12 and ``day_of_week``
0-6 where **0 is Sunday** (huey's convention), 1 Monday, ..., 6 Saturday; 7 is accepted as Sunday too, so
``"5-7"`` means Friday, Saturday and Sunday. ``day_of_week`` refuses ``*/n``, as huey does: it restarts every
Sunday, so ``"*/3"`` (Sunday, Wednesday, Saturday) would not mean "every third day"; a bounded ``m-n/k``
(``"1-5/2"``: Monday, Wednesday, Friday) works. Anything else -- a value out of range, a reversed range
(``"5-2"``), a step of 0, an empty item, an item that does not parse, a type other than ``int``/``str`` --
raises ``ValueError`` naming the field and the value as soon as ``crontab()`` is called. huey's ``strict``
argument asks for exactly that; here it is always so (huey without ``strict=True`` silently drops an item it
cannot parse, which changes the schedule), and ``strict`` is accepted for compatibility.

Behaviour
---------
* **All five fields must match** (logical AND), as in huey. This differs from Vixie cron, which fires when
  *either* the day of the month or the day of the week matches once both are restricted: here
  ``crontab(day=13, day_of_week=5)`` means "Friday the 13th", not "every 13th and every Friday".
* **Time zones.** Without ``tz`` a datetime is matched on its own wall clock: a naive one as it is, an
  aware one in its own zone (huey's behaviour). With ``tz`` (a ``zoneinfo.ZoneInfo``, a zone name such as
  ``"Europe/Paris"`` or any ``tzinfo``) an aware datetime is first converted into that zone and a naive
  one is taken as UTC, so ``crontab(minute=0, hour=9, tz="Europe/Paris")`` fires at 09:00 in Paris on both
  sides of a daylight-saving change.
* **reject_seconds=True** makes the schedule raise ``ValueError`` when asked about a datetime that has seconds
  or microseconds, to catch callers that do not truncate to the minute.
* ``crontab.hourly()`` and ``crontab.daily()`` (huey's shortcuts) are ``crontab(minute=0)`` and
  ``crontab(minute=0, hour=0)``.
* :meth:`Crontab.next_runs` lists the next matching minutes, :meth:`Crontab.describe` gives the expression
  back as text (``"*/5 9-17 * * 1-5 tz=Europe/Paris"``) and :meth:`Crontab.parse` reads one, including the
  aliases ``@hourly``, ``@daily`` (or ``@midnight``), ``@weekly``, ``@monthly`` and ``@yearly`` (or
  ``@annually``).
"""

from __future__ import annotations

import calendar
import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, date, datetime, time, timedelta, tzinfo
from typing import ClassVar
from zoneinfo import ZoneInfo

__all__ = ["SEARCH_HORIZON_YEARS", "Crontab", "crontab"]

#: ``next_runs`` gives up after this many years without a single match. The rarest satisfiable
#: schedule (29 February on a given weekday) can go 40 years between runs, so every satisfiable
#: schedule is found; schedules that can never match (such as 30 February) are detected up front.
SEARCH_HORIZON_YEARS = 41

_HORIZON = timedelta(days=366 * SEARCH_HORIZON_YEARS)
_ONE_DAY = timedelta(days=1)

# Longest month length for each month, leap years included.
_MONTH_MAX_DAYS = {month: calendar.monthrange(2000, month)[1] for month in range(1, 13)}

_ITEM_RE = re.compile(r"(?:(?P<star>\*)|(?P<start>\d+)(?:-(?P<end>\d+))?)(?:/(?P<step>\d+))?")

_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

TzArg = ZoneInfo | tzinfo | str | None


@dataclass(frozen=True)
class _Field:
    """One cron field: its name, its accepted numbers and how ``*`` expands."""

    name: str
    low: int
    high: int  # highest number accepted in the text (7 for day_of_week)
    star_high: int  # highest value ``*`` covers (6 for day_of_week)
    note: str = ""

    def describe_range(self) -> str:
        return f"{self.name} accepts {self.low}-{self.high}{self.note}"

    def normalise(self, number: int) -> int:
        # Only day_of_week has an alias: 7 is Sunday, like 0.
        return number % 7 if self.name == "day_of_week" else number


_FIELDS = (
    _Field("minute", 0, 59, 59),
    _Field("hour", 0, 23, 23),
    _Field("day", 1, 31, 31),
    _Field("month", 1, 12, 12),
    _Field("day_of_week", 0, 7, 6, " where 0 and 7 are Sunday"),
)


def _field_error(field: _Field, value: object, reason: str) -> ValueError:
    return ValueError(f"invalid crontab {field.name} {value!r}: {reason}")


def _parse_field(field: _Field, value: object) -> tuple[str, frozenset[int]]:
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


def _resolve_tz(tz: object) -> tzinfo | None:
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


def _is_aware(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() is not None


def _sunday_zero_weekday(day: date) -> int:
    return (day.weekday() + 1) % 7


class Crontab:
    """A cron schedule; call it with a datetime to learn whether that minute is on the schedule.

    Build one with :func:`crontab` (keyword per field, like huey) or :meth:`Crontab.parse` (a 5-field
    string). Instances are immutable and hashable; two are equal when they match the same minutes in the
    same time zone with the same ``reject_seconds`` flag, whatever the spelling (``"*/20"`` equals ``"0,20,40"``).
    """

    _ALIASES: ClassVar[dict[str, str]] = _ALIASES

    def __init__(
        self,
        minute: int | str = "*",
        hour: int | str = "*",
        day: int | str = "*",
        month: int | str = "*",
        day_of_week: int | str = "*",
        strict: bool = False,
        tz: TzArg = None,
        *,
        reject_seconds: bool = False,
    ) -> None:
        # ``strict`` is huey's "refuse items that do not parse", which every field here always does.
        del strict
        parsed = [
            _parse_field(field, value)
            for field, value in zip(_FIELDS, (minute, hour, day, month, day_of_week), strict=True)
        ]
        self._texts: tuple[str, ...] = tuple(text for text, _ in parsed)
        sets = [numbers for _, numbers in parsed]
        self._minutes, self._hours, self._days, self._months, self._days_of_week = sets
        self._reject_seconds = bool(reject_seconds)
        self._tz = _resolve_tz(tz)
        # Minutes of the day that match, as (hour, minute) in order; days of the month in order.
        self._times = tuple((h, m) for h in sorted(self._hours) for m in sorted(self._minutes))
        self._sorted_days = tuple(sorted(self._days))
        self._satisfiable = min(self._days) <= max(_MONTH_MAX_DAYS[m] for m in self._months)

    # -- read-only views ------------------------------------------------------------------------------

    @property
    def minutes(self) -> frozenset[int]:
        """The minutes (0-59) the schedule matches."""
        return self._minutes

    @property
    def hours(self) -> frozenset[int]:
        """The hours (0-23) the schedule matches."""
        return self._hours

    @property
    def days(self) -> frozenset[int]:
        """The days of the month (1-31) the schedule matches."""
        return self._days

    @property
    def months(self) -> frozenset[int]:
        """The months (1-12) the schedule matches."""
        return self._months

    @property
    def days_of_week(self) -> frozenset[int]:
        """The days of the week the schedule matches, 0 = Sunday ... 6 = Saturday (7 is folded into 0)."""
        return self._days_of_week

    @property
    def reject_seconds(self) -> bool:
        """Whether calling the schedule with a datetime that has seconds raises ``ValueError``."""
        return self._reject_seconds

    @property
    def tz(self) -> tzinfo | None:
        """The zone the schedule is matched in, or ``None`` for each datetime's own wall clock."""
        return self._tz

    @property
    def tz_name(self) -> str | None:
        """The name of :attr:`tz` (``"Europe/Paris"``), or ``None`` without a zone."""
        if self._tz is None:
            return None
        key = getattr(self._tz, "key", None)
        return key if isinstance(key, str) else str(self._tz)

    @property
    def is_satisfiable(self) -> bool:
        """``False`` when no date can ever match, for example ``day=30, month=2``."""
        return self._satisfiable

    # -- matching -------------------------------------------------------------------------------------

    def __call__(self, dt: datetime) -> bool:
        """Whether ``dt``'s minute is on the schedule (seconds ignored unless ``reject_seconds``)."""
        if not isinstance(dt, datetime):
            raise TypeError(f"crontab expects a datetime, got {type(dt).__name__}: {dt!r}")
        if self._reject_seconds and (dt.second or dt.microsecond):
            raise ValueError(
                f"crontab(reject_seconds=True) was given {dt.isoformat()}, which has seconds or microseconds"
            )
        return self._matches_wall(self._wall_clock(dt))

    def _wall_clock(self, dt: datetime) -> datetime:
        if self._tz is None:
            return dt
        if not _is_aware(dt):
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(self._tz)

    def _matches_wall(self, wall: datetime) -> bool:
        return (
            wall.minute in self._minutes
            and wall.hour in self._hours
            and wall.day in self._days
            and wall.month in self._months
            and _sunday_zero_weekday(wall) in self._days_of_week
        )

    # -- upcoming runs --------------------------------------------------------------------------------

    def next_runs(self, after: datetime, count: int = 5) -> list[datetime]:
        """The next ``count`` matching minutes strictly after ``after``, earliest first.

        The datetimes returned are the ones this schedule answers ``True`` for:

        * no ``tz`` and a naive ``after``: naive wall-clock datetimes;
        * an aware ``after``: aware datetimes in the schedule's ``tz`` (or, without one, in ``after``'s zone);
        * a ``tz`` and a naive ``after`` (taken as UTC): naive UTC datetimes.

        In a zone with daylight saving, every real instant is returned once, in time order: local minutes
        that do not exist (the hour skipped in spring) are skipped, and a minute that occurs twice (the
        hour repeated in autumn) is returned twice, once per UTC instant -- a schedule of ``30 2 * * *``
        in Paris runs at 00:30 and at 01:30 UTC on 2026-10-25, as both are 02:30 in Paris.

        The search skips whole months and days that cannot match. It returns fewer than ``count`` items
        (possibly none) when the schedule can never match, when it goes :data:`SEARCH_HORIZON_YEARS`
        years without a match, or when it reaches the year 9999.
        """
        if not isinstance(after, datetime):
            raise TypeError(f"next_runs() expects a datetime, got {type(after).__name__}: {after!r}")
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"next_runs() count must be an int, got {type(count).__name__}")
        if count < 0:
            raise ValueError(f"next_runs() count must not be negative, got {count}")
        if count == 0 or not self._satisfiable:
            return []

        aware = _is_aware(after)
        if self._tz is None and not aware:
            return self._next_wall_times(after, count)

        zone = self._tz if self._tz is not None else after.tzinfo
        assert zone is not None
        after_utc = after.astimezone(UTC).replace(tzinfo=None) if aware else after
        instants = self._next_instants(after_utc, zone, count)
        if aware:
            return [instant.replace(tzinfo=UTC).astimezone(zone) for instant in instants]
        return instants

    def _matching_days(self, start: date) -> Iterator[date]:
        """Dates from ``start`` on whose month, day and weekday match, skipping months that cannot."""
        year, month = start.year, start.month
        while year <= MAXYEAR:
            if month in self._months:
                last_day = calendar.monthrange(year, month)[1]
                first_day = start.day if (year, month) == (start.year, start.month) else 1
                for day_number in self._sorted_days:
                    if day_number > last_day:
                        break
                    if day_number < first_day:
                        continue
                    day = date(year, month, day_number)
                    if _sunday_zero_weekday(day) in self._days_of_week:
                        yield day
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def _next_wall_times(self, after: datetime, count: int) -> list[datetime]:
        """``next_runs`` on a plain wall clock (no zone): local order is time order."""
        results: list[datetime] = []
        give_up = _add_days(after.date(), _HORIZON)
        for day in self._matching_days(after.date()):
            if day > give_up:
                break
            midnight = datetime.combine(day, time(), tzinfo=after.tzinfo)
            found = False
            for hour, minute in self._times:
                candidate = midnight.replace(hour=hour, minute=minute)
                if candidate > after:
                    found = True
                    results.append(candidate)
                    if len(results) == count:
                        return results
            if found:
                give_up = _add_days(day, _HORIZON)
        return results

    def _next_instants(self, after_utc: datetime, zone: tzinfo, count: int) -> list[datetime]:
        """``next_runs`` in a zone: naive UTC instants after ``after_utc``, in time order, without repeats.

        Days are walked in local order, but around an autumn change a later local time can be an earlier
        instant. Found instants therefore wait in a heap until no later local day can produce an earlier
        one: UTC offsets are under 24 hours, so any instant from local day D or later is after D's
        midnight minus 24 hours.
        """
        local_start = after_utc.replace(tzinfo=UTC).astimezone(zone).date()
        # A local time on the previous day can still occur after ``after`` (repeated hour), so start there.
        start = local_start - _ONE_DAY if local_start > date.min else local_start
        pending: list[datetime] = []
        results: list[datetime] = []
        give_up = _add_days(start, _HORIZON)
        for day in self._matching_days(start):
            if day > give_up:
                break
            safe_until = _midnight_minus_a_day(day)
            while pending and safe_until is not None and pending[0] <= safe_until:
                results.append(heapq.heappop(pending))
                if len(results) == count:
                    return results
            found = False
            for instant in self._instants_on(day, zone):
                if instant > after_utc:
                    heapq.heappush(pending, instant)
                    found = True
            if found:
                give_up = _add_days(day, _HORIZON)
        while pending and len(results) < count:
            results.append(heapq.heappop(pending))
        return results

    def _instants_on(self, day: date, zone: tzinfo) -> list[datetime]:
        """Naive UTC instants whose wall clock in ``zone`` is a matching minute of local ``day``."""
        midnight = datetime.combine(day, time())
        offset = _steady_offset(midnight, zone)
        if offset is not None:
            return [midnight.replace(hour=hour, minute=minute) - offset for hour, minute in self._times]
        instants: list[datetime] = []
        for hour, minute in self._times:
            wall = midnight.replace(hour=hour, minute=minute)
            previous = None
            for fold in (0, 1):
                instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                if instant.astimezone(zone).replace(tzinfo=None) != wall:
                    continue  # this local minute does not exist (skipped by a spring change)
                instant = instant.replace(tzinfo=None)
                if instant != previous:  # fold=1 differs only in a repeated hour
                    instants.append(instant)
                    previous = instant
        return instants

    # -- text -----------------------------------------------------------------------------------------

    @property
    def expression(self) -> str:
        """The five fields as cron text, such as ``"*/5 9-17 * * 1-5"`` (without the zone)."""
        return " ".join(self._texts)

    def describe(self) -> str:
        """The schedule as text: the five fields, plus ``" tz=<zone>"`` when it has a zone.

        :meth:`parse` reads this text back.
        """
        if self._tz is None:
            return self.expression
        return f"{self.expression} tz={self.tz_name}"

    def __str__(self) -> str:
        """Same as :meth:`describe`."""
        return self.describe()

    def __repr__(self) -> str:
        """:meth:`describe`, plus ``" reject_seconds=True"`` when set; :meth:`parse` reads it back."""
        return f"{self.describe()} reject_seconds=True" if self._reject_seconds else self.describe()

    @classmethod
    def parse(cls, expression: str, tz: TzArg = None, reject_seconds: bool = False) -> Crontab:
        """Build a schedule from cron text: ``"minute hour day month day_of_week"`` or an alias.

        Aliases: ``@hourly`` (``0 * * * *``), ``@daily``/``@midnight`` (``0 0 * * *``), ``@weekly``
        (``0 0 * * 0``), ``@monthly`` (``0 0 1 * *``), ``@yearly``/``@annually`` (``0 0 1 1 *``).
        The text may end with ``tz=<zone name>`` and ``reject_seconds=true``, as :meth:`describe` and ``repr``
        write them. Raises ``ValueError`` for anything else.
        """
        if not isinstance(expression, str):
            raise ValueError(
                f"invalid crontab expression {expression!r}: expected a str, got {type(expression).__name__}"
            )
        tokens = expression.split()
        text_tz: str | None = None
        while tokens and "=" in tokens[-1]:
            key, _, option = tokens.pop().partition("=")
            if key == "tz" and text_tz is None:
                text_tz = option
            elif key == "reject_seconds" and option.lower() in ("true", "false"):
                reject_seconds = reject_seconds or option.lower() == "true"
            else:
                raise ValueError(
                    f"invalid crontab expression {expression!r}: unknown or repeated option {key}={option!r} "
                    "(expected tz=<zone> or reject_seconds=true)"
                )
        if text_tz is not None:
            if tz is not None and _resolve_tz(tz) != _resolve_tz(text_tz):
                raise ValueError(
                    f"invalid crontab expression {expression!r}: tz={text_tz} conflicts with tz={tz!r}"
                )
            tz = text_tz
        if len(tokens) == 1 and tokens[0].startswith("@"):
            alias = cls._ALIASES.get(tokens[0].lower())
            if alias is None:
                raise ValueError(
                    f"invalid crontab expression {expression!r}: unknown alias {tokens[0]!r} "
                    f"(known: {', '.join(cls._ALIASES)})"
                )
            tokens = alias.split()
        if len(tokens) != 5:
            raise ValueError(
                f"invalid crontab expression {expression!r}: expected 5 fields "
                f"(minute hour day month day_of_week) or an alias such as @daily, got {len(tokens)}"
            )
        return cls(*tokens, tz=tz, reject_seconds=reject_seconds)

    # -- comparison -----------------------------------------------------------------------------------

    def _key(self) -> tuple[object, ...]:
        tz_key: object = getattr(self._tz, "key", None) or self._tz
        return (
            self._minutes,
            self._hours,
            self._days,
            self._months,
            self._days_of_week,
            tz_key,
            self._reject_seconds,
        )

    def __eq__(self, other: object) -> bool:
        """Equal when both match the same minutes, in the same zone, with the same ``reject_seconds`` flag."""
        if not isinstance(other, Crontab):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        """Consistent with ``==``."""
        return hash(self._key())


def crontab(
    minute: int | str = "*",
    hour: int | str = "*",
    day: int | str = "*",
    month: int | str = "*",
    day_of_week: int | str = "*",
    strict: bool = False,
    tz: TzArg = None,
    *,
    reject_seconds: bool = False,
) -> Crontab:
    """Build a :class:`Crontab` the huey way: ``crontab(minute="0", hour="*/3")``.

    Fields default to ``"*"``; ``day_of_week`` counts from 0 = Sunday (7 is Sunday too). See the module
    docstring for the syntax. Raises ``ValueError`` naming the field for any invalid value, and for an
    unknown ``tz`` name. ``strict`` is huey's request to refuse items that do not parse, which is always done
    here; ``reject_seconds`` see :class:`Crontab`.
    """
    return Crontab(minute, hour, day, month, day_of_week, tz=tz, reject_seconds=reject_seconds)


def _hourly(tz: TzArg = None) -> Crontab:
    """At minute 0 of every hour: ``crontab(minute=0)`` (huey's ``crontab.hourly()``)."""
    return crontab(minute=0, tz=tz)


def _daily(tz: TzArg = None) -> Crontab:
    """At midnight every day: ``crontab(minute=0, hour=0)`` (huey's ``crontab.daily()``)."""
    return crontab(minute=0, hour=0, tz=tz)


crontab.hourly = _hourly  # type: ignore[attr-defined]
crontab.daily = _daily  # type: ignore[attr-defined]


def _add_days(day: date, delta: timedelta) -> date:
    try:
        return day + delta
    except OverflowError:
        return date.max


def _midnight_minus_a_day(day: date) -> datetime | None:
    """Naive midnight of ``day`` minus 24 hours, or ``None`` when that falls before year 1."""
    try:
        return datetime.combine(day, time()) - _ONE_DAY
    except OverflowError:
        return None


def _steady_offset(midnight: datetime, zone: tzinfo) -> timedelta | None:
    """The zone's UTC offset for the whole local day starting at ``midnight``, or ``None`` if it changes.

    The offset is taken as steady when both midnights bounding the day exist, are not repeated and have
    the same offset (tz databases have no day with two changes that cancel out).
    """
    try:
        next_midnight = midnight + _ONE_DAY
    except OverflowError:
        return None
    offsets = {
        wall.replace(tzinfo=zone, fold=fold).utcoffset()
        for wall in (midnight, next_midnight)
        for fold in (0, 1)
    }
    return offsets.pop() if len(offsets) == 1 else None
