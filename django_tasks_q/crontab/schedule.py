"""The :class:`Crontab` schedule: matching a datetime, listing the next runs, and its text form."""

from __future__ import annotations

import calendar
import heapq
from collections.abc import Iterator
from datetime import MAXYEAR, UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, ClassVar

from django_tasks_q.crontab.fields import ALIASES, FIELDS, TzArg, parse_field, resolve_tz

__all__ = ["SEARCH_HORIZON_YEARS", "Crontab", "crontab"]

#: ``next_runs`` gives up after this many years without a single match. The rarest satisfiable
#: schedule (29 February on a given weekday) can go 40 years between runs, so every satisfiable
#: schedule is found; schedules that can never match (such as 30 February) are detected up front.
SEARCH_HORIZON_YEARS = 41

_HORIZON = timedelta(days=366 * SEARCH_HORIZON_YEARS)
_ONE_DAY = timedelta(days=1)

# Longest month length for each month, leap years included.
_MONTH_MAX_DAYS = {month: calendar.monthrange(2000, month)[1] for month in range(1, 13)}


def _read_only(attribute: str, doc: str) -> Any:
    """A read-only property returning the instance's ``attribute``."""

    def get(self: Crontab) -> Any:
        return getattr(self, attribute)

    return property(get, doc=doc)


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

    _ALIASES: ClassVar[dict[str, str]] = ALIASES

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
            parse_field(field, value)
            for field, value in zip(FIELDS, (minute, hour, day, month, day_of_week), strict=True)
        ]
        self._texts: tuple[str, ...] = tuple(text for text, _ in parsed)
        sets = [numbers for _, numbers in parsed]
        self._minutes, self._hours, self._days, self._months, self._days_of_week = sets
        self._reject_seconds = bool(reject_seconds)
        self._tz = resolve_tz(tz)
        # Minutes of the day that match, as (hour, minute) in order; days of the month in order.
        self._times = tuple((h, m) for h in sorted(self._hours) for m in sorted(self._minutes))
        self._sorted_days = tuple(sorted(self._days))
        self._satisfiable = min(self._days) <= max(_MONTH_MAX_DAYS[m] for m in self._months)

    # -- read-only views ------------------------------------------------------------------------------

    minutes: frozenset[int] = _read_only("_minutes", "The minutes (0-59) the schedule matches.")
    hours: frozenset[int] = _read_only("_hours", "The hours (0-23) the schedule matches.")
    days: frozenset[int] = _read_only("_days", "The days of the month (1-31) the schedule matches.")
    months: frozenset[int] = _read_only("_months", "The months (1-12) the schedule matches.")
    days_of_week: frozenset[int] = _read_only(
        "_days_of_week",
        "The days of the week the schedule matches, 0 = Sunday ... 6 = Saturday (7 is folded into 0).",
    )
    reject_seconds: bool = _read_only(
        "_reject_seconds",
        "Whether calling the schedule with a datetime that has seconds raises ``ValueError``.",
    )
    tz: tzinfo | None = _read_only(
        "_tz", "The zone the schedule is matched in, or ``None`` for each datetime's own wall clock."
    )

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
            if tz is not None and resolve_tz(tz) != resolve_tz(text_tz):
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
        minute, hour, day, month, day_of_week = tokens
        return cls(minute, hour, day, month, day_of_week, tz=tz, reject_seconds=reject_seconds)

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


crontab.hourly = _hourly  # type: ignore[attr-defined]  # huey names them as attributes of crontab
crontab.daily = _daily  # type: ignore[attr-defined]  # huey names them as attributes of crontab


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
