"""Tests for ``django_tasks_q.crontab``: field syntax, validation, matching, time zones, next_runs and parse.

Pure Python: nothing here needs Django.
"""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from django_tasks_q.crontab import SEARCH_HORIZON_YEARS, Crontab, crontab

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
ALL_MINUTES = frozenset(range(60))


def utc(*args: int) -> datetime:
    """An aware UTC datetime."""
    return datetime(*args, tzinfo=UTC)


def paris(*args: int, fold: int = 0) -> datetime:
    """An aware Europe/Paris datetime."""
    return datetime(*args, tzinfo=PARIS, fold=fold)


def brute_force_runs(
    schedule: Crontab, after: datetime, count: int, zone: ZoneInfo, days: int
) -> list[datetime]:
    """Reference for next_runs: test every UTC minute after ``after`` for ``days`` days."""
    instant = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = instant + timedelta(days=days)
    found = []
    while instant < end and len(found) < count:
        if schedule(instant):
            found.append(instant.astimezone(zone))
        instant += timedelta(minutes=1)
    return found


# -- syntax ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "attribute", "expected"),
    [
        ({"minute": "*"}, "minutes", set(range(60))),
        ({"minute": "*/15"}, "minutes", {0, 15, 30, 45}),
        ({"minute": "*/7"}, "minutes", {0, 7, 14, 21, 28, 35, 42, 49, 56}),
        ({"minute": "*/90"}, "minutes", {0}),
        ({"minute": "5"}, "minutes", {5}),
        ({"minute": 5}, "minutes", {5}),
        ({"minute": 0}, "minutes", {0}),
        ({"minute": "05"}, "minutes", {5}),
        ({"minute": "10-12"}, "minutes", {10, 11, 12}),
        ({"minute": "10-30/10"}, "minutes", {10, 20, 30}),
        ({"minute": "10-35/10"}, "minutes", {10, 20, 30}),
        ({"minute": "7-7"}, "minutes", {7}),
        ({"minute": "1,2,40-42,*/30"}, "minutes", {0, 1, 2, 30, 40, 41, 42}),
        ({"minute": " 1 , 2 "}, "minutes", {1, 2}),
        ({"minute": "3,3,3"}, "minutes", {3}),
        ({"hour": "*/5"}, "hours", {0, 5, 10, 15, 20}),
        ({"hour": "9-17"}, "hours", set(range(9, 18))),
        ({"hour": "8-18/4"}, "hours", {8, 12, 16}),
        ({"hour": 23}, "hours", {23}),
        ({"day": "*"}, "days", set(range(1, 32))),
        ({"day": "*/10"}, "days", {1, 11, 21, 31}),
        ({"day": "1,15,31"}, "days", {1, 15, 31}),
        ({"month": "*/4"}, "months", {1, 5, 9}),
        ({"month": "6-8"}, "months", {6, 7, 8}),
        ({"month": 12}, "months", {12}),
        ({"day_of_week": "*"}, "days_of_week", set(range(7))),
        ({"day_of_week": "1-5"}, "days_of_week", {1, 2, 3, 4, 5}),
        ({"day_of_week": "1-5/2"}, "days_of_week", {1, 3, 5}),
        ({"day_of_week": "5-7"}, "days_of_week", {5, 6, 0}),
        ({"day_of_week": "0-7"}, "days_of_week", set(range(7))),
        ({"day_of_week": "1-7/2"}, "days_of_week", {1, 3, 5, 0}),
        ({"day_of_week": "0,6"}, "days_of_week", {0, 6}),
    ],
)
def test_field_syntax_expands_to_the_expected_values(kwargs, attribute, expected):
    assert getattr(crontab(**kwargs), attribute) == frozenset(expected)


def test_unset_fields_default_to_every_value():
    schedule = crontab(minute=0)
    assert schedule.hours == frozenset(range(24))
    assert schedule.days == frozenset(range(1, 32))
    assert schedule.months == frozenset(range(1, 13))
    assert schedule.days_of_week == frozenset(range(7))


@pytest.mark.parametrize(
    ("kwargs", "field", "value", "fragment"),
    [
        ({"minute": 60}, "minute", "60", "60 is out of range (minute accepts 0-59)"),
        ({"minute": "60"}, "minute", "'60'", "60 is out of range (minute accepts 0-59)"),
        ({"minute": -1}, "minute", "-1", "cannot parse '-1'"),
        ({"minute": "0-60"}, "minute", "'0-60'", "60 is out of range"),
        ({"minute": "50-10"}, "minute", "'50-10'", "the range '50-10' is reversed (50 > 10)"),
        ({"minute": "*/0"}, "minute", "'*/0'", "the step in '*/0' must be at least 1"),
        ({"minute": "0-30/0"}, "minute", "'0-30/0'", "the step in '0-30/0' must be at least 1"),
        ({"minute": "5/10"}, "minute", "'5/10'", "a step needs '*' or a range before it"),
        ({"minute": ""}, "minute", "''", "the value is empty"),
        ({"minute": "   "}, "minute", "'   '", "the value is empty"),
        ({"minute": "1,,2"}, "minute", "'1,,2'", "empty item"),
        ({"minute": "1,"}, "minute", "'1,'", "empty item"),
        ({"minute": "a"}, "minute", "'a'", "cannot parse 'a'"),
        ({"minute": "*/"}, "minute", "'*/'", "cannot parse '*/'"),
        ({"minute": "1-"}, "minute", "'1-'", "cannot parse '1-'"),
        ({"minute": "**"}, "minute", "'**'", "cannot parse '**'"),
        ({"minute": "*-5"}, "minute", "'*-5'", "cannot parse '*-5'"),
        ({"minute": "1.5"}, "minute", "'1.5'", "cannot parse '1.5'"),
        ({"minute": 1.5}, "minute", "1.5", "expected an int or a str, got float"),
        ({"minute": None}, "minute", "None", "expected an int or a str, got NoneType"),
        ({"minute": True}, "minute", "True", "expected an int or a str, got bool"),
        ({"minute": [1, 2]}, "minute", "[1, 2]", "expected an int or a str, got list"),
        ({"hour": 24}, "hour", "24", "24 is out of range (hour accepts 0-23)"),
        ({"hour": "22-24"}, "hour", "'22-24'", "24 is out of range (hour accepts 0-23)"),
        ({"hour": "12-3"}, "hour", "'12-3'", "reversed (12 > 3)"),
        ({"day": 0}, "day", "0", "0 is out of range (day accepts 1-31)"),
        ({"day": 32}, "day", "32", "32 is out of range (day accepts 1-31)"),
        ({"day": "0-5"}, "day", "'0-5'", "0 is out of range (day accepts 1-31)"),
        ({"month": 0}, "month", "0", "0 is out of range (month accepts 1-12)"),
        ({"month": "13"}, "month", "'13'", "13 is out of range (month accepts 1-12)"),
        ({"month": "jan"}, "month", "'jan'", "cannot parse 'jan'"),
        ({"day_of_week": 8}, "day_of_week", "8", "8 is out of range (day_of_week accepts 0-7 where 0 and 7"),
        ({"day_of_week": "6-0"}, "day_of_week", "'6-0'", "the range '6-0' is reversed (6 > 0)"),
        ({"day_of_week": "mon"}, "day_of_week", "'mon'", "cannot parse 'mon'"),
        ({"day_of_week": "*/3"}, "day_of_week", "'*/3'", "'*/3' restarts every Sunday, so it does not mean every 3"),
    ],
)
def test_invalid_field_values_raise_a_value_error_naming_field_and_value(kwargs, field, value, fragment):
    with pytest.raises(ValueError) as excinfo:
        crontab(**kwargs)
    message = str(excinfo.value)
    assert message.startswith(f"invalid crontab {field} {value}: "), message
    assert fragment in message


@pytest.mark.parametrize("strict", [False, True])
def test_items_that_do_not_parse_are_refused_whatever_huey_s_strict_says(strict):
    # huey without strict=True drops such an item silently; here it is always an error, strict is accepted.
    for value in ("*abc", "abc", "a-b", "1-c", "0x9"):
        with pytest.raises(ValueError, match=r"^invalid crontab minute "):
            crontab(minute=value, strict=strict)
    assert crontab("0", "9", "*", "*", "*", strict) == crontab(minute=0, hour=9)


def test_huey_shortcuts_hourly_and_daily():
    assert crontab.hourly() == crontab(minute=0)
    assert crontab.daily() == crontab(minute=0, hour=0)
    assert crontab.daily(tz="Europe/Paris") == crontab(minute=0, hour=0, tz=PARIS)
    assert crontab.hourly()(datetime(2026, 4, 1, 7, 0)) and not crontab.hourly()(datetime(2026, 4, 1, 7, 1))


def test_the_first_invalid_field_is_reported_even_when_others_are_valid():
    with pytest.raises(ValueError, match=r"^invalid crontab month 13: "):
        crontab(minute="*/5", hour="9-17", month=13, day_of_week="1-5")


@pytest.mark.parametrize("bad_tz", ["Mars/Olympus_Mons", "Europe", "", "../../etc/passwd", "not a zone"])
def test_unknown_time_zone_names_raise_a_value_error_naming_them(bad_tz):
    with pytest.raises(ValueError) as excinfo:
        crontab(tz=bad_tz)
    assert str(excinfo.value) == f"invalid crontab tz {bad_tz!r}: unknown time zone"


def test_a_tz_of_the_wrong_type_raises_a_value_error():
    with pytest.raises(ValueError, match=r"invalid crontab tz 3600: expected a zoneinfo.ZoneInfo"):
        crontab(tz=3600)


# -- matching --------------------------------------------------------------------------------------------


def test_matching_checks_every_field_and_ignores_seconds():
    schedule = crontab(minute="*/15", hour="9-17", day_of_week="1-5")
    assert schedule(datetime(2026, 5, 4, 9, 0))  # Monday
    assert schedule(datetime(2026, 5, 4, 17, 45, 59, 999999))
    assert not schedule(datetime(2026, 5, 4, 9, 5))  # minute
    assert not schedule(datetime(2026, 5, 4, 18, 0))  # hour
    assert not schedule(datetime(2026, 5, 3, 9, 0))  # Sunday
    assert not schedule(datetime(2026, 5, 9, 9, 0))  # Saturday


def test_month_and_day_of_month_are_matched():
    schedule = crontab(minute=0, hour=0, day="1,15", month="1-3")
    assert schedule(datetime(2026, 1, 1))
    assert schedule(datetime(2026, 3, 15))
    assert not schedule(datetime(2026, 4, 1))
    assert not schedule(datetime(2026, 2, 2))


def test_day_of_month_and_day_of_week_must_both_match_like_huey():
    friday_13th = crontab(minute=0, hour=0, day=13, day_of_week=5)
    assert friday_13th(datetime(2026, 2, 13))  # a Friday
    assert friday_13th(datetime(2026, 3, 13))  # a Friday
    assert not friday_13th(datetime(2026, 4, 13))  # the 13th, a Monday
    assert not friday_13th(datetime(2026, 2, 20))  # a Friday, the 20th
    matching_days = [
        date(2026, 1, 1) + timedelta(days=n)
        for n in range(365)
        if friday_13th(datetime.combine(date(2026, 1, 1) + timedelta(days=n), datetime.min.time()))
    ]
    assert matching_days == [date(2026, 2, 13), date(2026, 3, 13), date(2026, 11, 13)]


@pytest.mark.parametrize("sunday", [0, 7, "0", "7", "7-7", "0,7"])
def test_sunday_is_both_0_and_7(sunday):
    schedule = crontab(minute=0, hour=12, day_of_week=sunday)
    assert schedule.days_of_week == frozenset({0})
    assert schedule(datetime(2026, 5, 3, 12, 0))  # Sunday
    assert not schedule(datetime(2026, 5, 4, 12, 0))  # Monday
    assert not schedule(datetime(2026, 5, 2, 12, 0))  # Saturday


def test_day_of_week_numbers_follow_huey_sunday_zero_convention():
    week = [datetime(2026, 5, 3) + timedelta(days=n) for n in range(7)]  # Sunday .. Saturday
    for number, day in enumerate(week):
        matching = [d for d in week if crontab(day_of_week=number)(d)]
        assert matching == [day]
    assert [d.strftime("%a") for d in week if crontab(day_of_week="5-7")(d)] == ["Sun", "Fri", "Sat"]


def test_reject_seconds_rejects_seconds_and_microseconds():
    schedule = crontab(minute=0, reject_seconds=True)
    assert schedule(datetime(2026, 5, 4, 9, 0))
    assert not schedule(datetime(2026, 5, 4, 9, 1))
    with pytest.raises(ValueError, match=r"reject_seconds=True.*2026-05-04T09:00:30.*seconds or microseconds"):
        schedule(datetime(2026, 5, 4, 9, 0, 30))
    with pytest.raises(ValueError, match="seconds or microseconds"):
        schedule(datetime(2026, 5, 4, 9, 0, 0, 1))
    # Without reject_seconds the same datetimes are simply matched on their minute.
    assert crontab(minute=0)(datetime(2026, 5, 4, 9, 0, 30, 5))


def test_calling_with_something_else_than_a_datetime_is_a_type_error():
    with pytest.raises(TypeError, match="expects a datetime, got date"):
        crontab()(date(2026, 5, 4))


def test_without_tz_naive_and_aware_datetimes_are_matched_on_their_own_wall_clock():
    schedule = crontab(minute=0, hour=9)
    assert schedule(datetime(2026, 5, 4, 9, 0))
    assert schedule(paris(2026, 5, 4, 9, 0))  # 07:00 UTC, but 09:00 on its own clock
    assert schedule(datetime(2026, 5, 4, 9, 0, tzinfo=NEW_YORK))
    assert not schedule(paris(2026, 5, 4, 9, 0).astimezone(UTC))


# -- time zones ------------------------------------------------------------------------------------------


def test_tz_accepts_a_name_or_a_zoneinfo_and_converts_aware_datetimes():
    by_name = crontab(minute=0, hour=9, tz="Europe/Paris")
    by_object = crontab(minute=0, hour=9, tz=PARIS)
    assert by_name.tz == PARIS
    assert by_name == by_object
    for schedule in (by_name, by_object):
        assert schedule(utc(2026, 5, 4, 7, 0))  # 09:00 CEST
        assert schedule(datetime(2026, 5, 4, 3, 0, tzinfo=NEW_YORK))  # 03:00 EDT = 09:00 CEST
        assert not schedule(utc(2026, 5, 4, 9, 0))


def test_with_tz_a_naive_datetime_is_taken_as_utc():
    schedule = crontab(minute=0, hour=9, tz="Europe/Paris")
    assert schedule(datetime(2026, 5, 4, 7, 0))  # naive UTC 07:00 = 09:00 Paris
    assert not schedule(datetime(2026, 5, 4, 9, 0))
    assert schedule(datetime(2026, 1, 5, 8, 0))  # winter: UTC+1


def test_nine_oclock_paris_follows_the_2026_dst_changes():
    schedule = crontab(minute=0, hour=9, tz="Europe/Paris")
    # Spring forward on Sunday 2026-03-29: 09:00 Paris moves from 08:00 UTC to 07:00 UTC.
    assert schedule(utc(2026, 3, 28, 8, 0))
    assert not schedule(utc(2026, 3, 28, 7, 0))
    assert schedule(utc(2026, 3, 29, 7, 0))
    assert not schedule(utc(2026, 3, 29, 8, 0))
    # Fall back on Sunday 2026-10-25: back to 08:00 UTC.
    assert schedule(utc(2026, 10, 24, 7, 0))
    assert schedule(utc(2026, 10, 25, 8, 0))
    assert not schedule(utc(2026, 10, 25, 7, 0))

    spring = schedule.next_runs(utc(2026, 3, 27, 12, 0), 3)
    assert spring == [paris(2026, 3, 28, 9, 0), paris(2026, 3, 29, 9, 0), paris(2026, 3, 30, 9, 0)]
    assert [run.astimezone(UTC) for run in spring] == [
        utc(2026, 3, 28, 8, 0),
        utc(2026, 3, 29, 7, 0),
        utc(2026, 3, 30, 7, 0),
    ]
    autumn = schedule.next_runs(utc(2026, 10, 23, 12, 0), 3)
    assert [run.astimezone(UTC) for run in autumn] == [
        utc(2026, 10, 24, 7, 0),
        utc(2026, 10, 25, 8, 0),
        utc(2026, 10, 26, 8, 0),
    ]
    assert all(run.tzinfo is PARIS and (run.hour, run.minute) == (9, 0) for run in spring + autumn)


def test_half_past_two_paris_does_not_exist_on_the_spring_change():
    schedule = crontab(minute=30, hour=2, tz="Europe/Paris")
    # 2026-03-29 02:00-02:59 does not exist in Paris: no UTC minute of that day matches.
    day_start = utc(2026, 3, 28, 23, 0)  # midnight in Paris
    hits = [
        day_start + timedelta(minutes=n) for n in range(24 * 60) if schedule(day_start + timedelta(minutes=n))
    ]
    assert hits == []
    runs = schedule.next_runs(utc(2026, 3, 27, 12, 0), 3)
    assert runs == [paris(2026, 3, 28, 2, 30), paris(2026, 3, 30, 2, 30), paris(2026, 3, 31, 2, 30)]
    assert [run.astimezone(UTC) for run in runs] == [
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 30, 0, 30),
        utc(2026, 3, 31, 0, 30),
    ]


def test_half_past_two_paris_happens_twice_on_the_autumn_change():
    schedule = crontab(minute=30, hour=2, tz="Europe/Paris")
    # 2026-10-25 02:00-02:59 happens first in CEST (UTC+2), then again in CET (UTC+1).
    assert schedule(utc(2026, 10, 25, 0, 30))
    assert schedule(utc(2026, 10, 25, 1, 30))
    runs = schedule.next_runs(utc(2026, 10, 24, 12, 0), 3)
    assert [run.astimezone(UTC) for run in runs] == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 26, 1, 30),
    ]
    assert [run.fold for run in runs] == [0, 1, 0]
    assert [run.utcoffset() for run in runs] == [timedelta(hours=2), timedelta(hours=1), timedelta(hours=1)]
    # Starting between the two occurrences yields only the second one.
    assert schedule.next_runs(utc(2026, 10, 25, 0, 30), 1) == [paris(2026, 10, 25, 2, 30, fold=1)]


def test_next_runs_through_the_repeated_hour_lists_each_instant_once_in_time_order():
    schedule = crontab(minute="*/20", hour="1-3", tz="Europe/Paris")
    runs = schedule.next_runs(utc(2026, 10, 24, 22, 0), 12)
    as_utc = [run.astimezone(UTC) for run in runs]
    assert as_utc == sorted(set(as_utc))
    assert as_utc == [utc(2026, 10, 24, 23, m) for m in (0, 20, 40)] + [
        utc(2026, 10, 25, h, m) for h in (0, 1, 2) for m in (0, 20, 40)
    ]
    # Wall clock: 01:00-01:40, 02:00-02:40 (CEST), 02:00-02:40 again (CET), 03:00-03:40.
    assert [(run.hour, run.minute, run.fold) for run in runs][3:9] == [
        (2, 0, 0),
        (2, 20, 0),
        (2, 40, 0),
        (2, 0, 1),
        (2, 20, 1),
        (2, 40, 1),
    ]


def test_next_runs_through_the_skipped_hour_has_no_gap_minutes():
    schedule = crontab(minute="*/30", tz="Europe/Paris")
    runs = schedule.next_runs(utc(2026, 3, 28, 23, 45), 6)
    assert [(run.hour, run.minute) for run in runs] == [(1, 0), (1, 30), (3, 0), (3, 30), (4, 0), (4, 30)]
    assert [run.astimezone(UTC) for run in runs] == [utc(2026, 3, 29, 0, m) for m in (0, 30)] + [
        utc(2026, 3, 29, h, m) for h in (1, 2) for m in (0, 30)
    ]


@pytest.mark.parametrize(
    ("expression", "zone", "after", "days"),
    [
        ("30 2 * * *", "Europe/Paris", utc(2026, 3, 26), 8),
        ("30 2 * * *", "Europe/Paris", utc(2026, 10, 22), 8),
        ("*/20 0-4 * * *", "Europe/Paris", utc(2026, 10, 24, 20), 3),
        ("*/20 0-4 * * *", "Europe/Paris", utc(2026, 3, 28, 20), 3),
        ("0,30 0,23 * * *", "America/Sao_Paulo", utc(2018, 2, 16), 4),  # clocks back from 00:00 to 23:00
        ("*/30 0,1 * * *", "America/Sao_Paulo", utc(2018, 11, 2), 4),  # midnight does not exist
        ("15,45 1,2 * * *", "Australia/Lord_Howe", utc(2026, 4, 3), 4),  # half-hour DST shift
        ("0 12 * * *", "Pacific/Apia", utc(2011, 12, 27), 6),  # 2011-12-30 was skipped entirely
        ("*/10 9-10 * * 1-5", "America/New_York", utc(2026, 3, 6), 6),
        ("*/15 23,0 * * *", "America/Moncton", utc(2006, 10, 28, 12), 2),  # repeated hour spans midnight
        ("*/15 23,0 * * *", "America/Moncton", utc(2006, 10, 29, 3, 0, 30), 1),  # starts inside it
        ("*/30 22,23,0 * * *", "America/St_Johns", utc(1988, 10, 29, 12), 2),  # two-hour fall back
    ],
)
def test_next_runs_agrees_with_a_minute_by_minute_search(expression, zone, after, days):
    schedule = Crontab.parse(expression, tz=zone)
    expected = brute_force_runs(schedule, after, 40, ZoneInfo(zone), days)
    runs = schedule.next_runs(after, len(expected))
    assert runs == expected
    assert [run.utcoffset() for run in runs] == [run.utcoffset() for run in expected]
    assert all(schedule(run) for run in runs)


def test_next_runs_when_the_repeated_hour_spans_midnight():
    """America/Moncton, 2006-10-29: at 00:01 ADT clocks went back to 23:01 AST on the 28th.

    So 00:00 on the 29th comes *before* the second 23:30 on the 28th, and a run on the 28th can follow a
    moment that is already the 29th locally.
    """
    moncton = ZoneInfo("America/Moncton")
    schedule = crontab(minute="*/30", hour="23,0", tz=moncton)
    runs = schedule.next_runs(utc(2006, 10, 28, 12), 6)
    assert [(run.day, run.hour, run.minute, run.fold) for run in runs] == [
        (28, 23, 0, 0),
        (28, 23, 30, 0),
        (29, 0, 0, 0),
        (28, 23, 30, 1),  # 23:00 AST does not exist: the repeat starts at 23:01
        (29, 0, 0, 1),
        (29, 0, 30, 0),
    ]
    assert [run.astimezone(UTC) for run in runs] == [
        utc(2006, 10, 29, h, m) for h, m in ((2, 0), (2, 30), (3, 0), (3, 30), (4, 0), (4, 30))
    ]
    # Just after 00:00 ADT on the 29th, the next run is 23:30 AST on the 28th.
    assert schedule.next_runs(utc(2006, 10, 29, 3, 0, 30), 1) == [
        datetime(2006, 10, 28, 23, 30, tzinfo=moncton, fold=1)
    ]


# -- next_runs -------------------------------------------------------------------------------------------


def test_next_runs_are_ordered_strictly_after_and_of_the_requested_count():
    schedule = crontab(minute="*/5", hour="9-17", day_of_week="1-5")
    after = datetime(2026, 5, 8, 17, 50)  # Friday
    runs = schedule.next_runs(after, 4)
    assert runs == [
        datetime(2026, 5, 8, 17, 55),
        datetime(2026, 5, 11, 9, 0),  # skips the weekend
        datetime(2026, 5, 11, 9, 5),
        datetime(2026, 5, 11, 9, 10),
    ]
    assert len(schedule.next_runs(after)) == 5
    assert len(schedule.next_runs(after, 100)) == 100
    assert schedule.next_runs(after, 0) == []


def test_next_runs_excludes_a_matching_after_and_handles_seconds():
    schedule = crontab(minute=0)
    assert schedule.next_runs(datetime(2026, 5, 4, 9, 0), 1) == [datetime(2026, 5, 4, 10, 0)]
    assert schedule.next_runs(datetime(2026, 5, 4, 8, 59, 59, 999999), 1) == [datetime(2026, 5, 4, 9, 0)]
    assert schedule.next_runs(datetime(2026, 5, 4, 9, 0, 1), 1) == [datetime(2026, 5, 4, 10, 0)]


def test_next_runs_crosses_months_and_years():
    assert crontab(minute=0, hour=0, day=1, month=1).next_runs(datetime(2026, 5, 4), 3) == [
        datetime(2027, 1, 1),
        datetime(2028, 1, 1),
        datetime(2029, 1, 1),
    ]
    assert crontab(minute=0, hour=0, day=31).next_runs(datetime(2026, 1, 31), 3) == [
        datetime(2026, 3, 31),
        datetime(2026, 5, 31),
        datetime(2026, 7, 31),
    ]


def test_next_runs_of_an_every_minute_schedule():
    runs = crontab().next_runs(datetime(2026, 12, 31, 23, 58, 30), 3)
    assert runs == [datetime(2026, 12, 31, 23, 59), datetime(2027, 1, 1, 0, 0), datetime(2027, 1, 1, 0, 1)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"day": 30, "month": 2},
        {"day": 31, "month": "2,4,6,9,11"},
        {"day": "30-31", "month": 2},
    ],
)
def test_next_runs_of_an_impossible_schedule_is_empty(kwargs):
    schedule = crontab(minute=0, hour=0, **kwargs)
    assert not schedule.is_satisfiable
    assert schedule.next_runs(datetime(2026, 1, 1), 5) == []
    assert schedule.next_runs(utc(2026, 1, 1), 5) == []
    assert Crontab.parse(schedule.describe(), tz="Europe/Paris").next_runs(utc(2026, 1, 1)) == []


def test_next_runs_finds_rare_but_possible_dates():
    leap_day = crontab(minute=0, hour=0, day=29, month=2)
    assert leap_day.is_satisfiable
    assert leap_day.next_runs(datetime(2026, 1, 1), 3) == [
        datetime(2028, 2, 29),
        datetime(2032, 2, 29),
        datetime(2036, 2, 29),
    ]
    # 29 February on a Monday: years apart, and 40 years between 2072 and 2112 (2100 is not a leap year).
    leap_monday = crontab(minute=0, hour=0, day=29, month=2, day_of_week=1)
    assert leap_monday.next_runs(datetime(2026, 1, 1), 4) == [
        datetime(2044, 2, 29),
        datetime(2072, 2, 29),
        datetime(2112, 2, 29),
        datetime(2140, 2, 29),
    ]
    assert SEARCH_HORIZON_YEARS > 40


def test_next_runs_stops_at_the_end_of_the_calendar():
    assert crontab(minute=0, hour=0, day=1, month=1).next_runs(datetime(9997, 6, 1), 5) == [
        datetime(9998, 1, 1),
        datetime(9999, 1, 1),
    ]


def test_next_runs_return_types_follow_the_input():
    naive_schedule = crontab(minute=0, hour=9)
    # No tz, naive after: naive wall-clock results.
    assert naive_schedule.next_runs(datetime(2026, 5, 4), 1) == [datetime(2026, 5, 4, 9, 0)]
    # No tz, aware after: results in after's own zone.
    (run,) = naive_schedule.next_runs(datetime(2026, 5, 4, tzinfo=NEW_YORK), 1)
    assert run.tzinfo is NEW_YORK and (run.hour, run.minute) == (9, 0)
    assert naive_schedule.next_runs(utc(2026, 5, 4, 10), 1) == [utc(2026, 5, 5, 9, 0)]
    fixed = timezone(timedelta(hours=5, minutes=30))
    assert naive_schedule.next_runs(datetime(2026, 5, 4, tzinfo=fixed), 1) == [
        datetime(2026, 5, 4, 9, tzinfo=fixed)
    ]

    paris_schedule = crontab(minute=0, hour=9, tz="Europe/Paris")
    # tz set, aware after (any zone): results in the schedule's zone.
    (run,) = paris_schedule.next_runs(datetime(2026, 5, 4, tzinfo=NEW_YORK), 1)
    assert run.tzinfo is PARIS and run == paris(2026, 5, 4, 9, 0)
    # tz set, naive after taken as UTC: naive UTC results, which the schedule matches.
    assert paris_schedule.next_runs(datetime(2026, 5, 4, 7, 0), 2) == [
        datetime(2026, 5, 5, 7, 0),
        datetime(2026, 5, 6, 7, 0),
    ]
    assert all(paris_schedule(run) for run in paris_schedule.next_runs(datetime(2026, 3, 27), 5))


def test_next_runs_near_midnight_in_a_zone_ahead_of_utc():
    schedule = crontab(minute=30, hour=0, tz="Asia/Tokyo")
    # 2026-05-03 15:00 UTC is 2026-05-04 00:00 in Tokyo: the next run is that same local day.
    assert schedule.next_runs(utc(2026, 5, 3, 15, 0), 2) == [
        datetime(2026, 5, 4, 0, 30, tzinfo=ZoneInfo("Asia/Tokyo")),
        datetime(2026, 5, 5, 0, 30, tzinfo=ZoneInfo("Asia/Tokyo")),
    ]


def test_next_runs_rejects_bad_arguments():
    schedule = crontab()
    with pytest.raises(ValueError, match="count must not be negative, got -1"):
        schedule.next_runs(datetime(2026, 1, 1), -1)
    with pytest.raises(TypeError, match="count must be an int"):
        schedule.next_runs(datetime(2026, 1, 1), 2.0)
    with pytest.raises(TypeError, match="expects a datetime"):
        schedule.next_runs("2026-01-01")


# -- parse, describe, equality ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("*/5 * * * *", crontab(minute="*/5")),
        ("*/5 9-17 * * 1-5", crontab(minute="*/5", hour="9-17", day_of_week="1-5")),
        ("  0   0  1,15 * *  ", crontab(minute=0, hour=0, day="1,15")),
        ("0 8-18/2 * 6-8 0,6", crontab(minute=0, hour="8-18/2", month="6-8", day_of_week="0,6")),
        ("@hourly", crontab(minute=0)),
        ("@daily", crontab(minute=0, hour=0)),
        ("@midnight", crontab(minute=0, hour=0)),
        ("@weekly", crontab(minute=0, hour=0, day_of_week=0)),
        ("@monthly", crontab(minute=0, hour=0, day=1)),
        ("@yearly", crontab(minute=0, hour=0, day=1, month=1)),
        ("@annually", crontab(minute=0, hour=0, day=1, month=1)),
        ("@DAILY", crontab(minute=0, hour=0)),
    ],
)
def test_parse_reads_five_fields_and_aliases(text, expected):
    assert Crontab.parse(text) == expected


def test_parse_aliases_describe_as_five_fields():
    assert Crontab.parse("@weekly").describe() == "0 0 * * 0"
    assert Crontab.parse("@hourly", tz="UTC").describe() == "0 * * * * tz=UTC"


def test_parse_accepts_tz_and_reject_seconds_as_argument_or_trailing_option():
    expected = crontab(minute=0, hour=9, tz="Europe/Paris")
    assert Crontab.parse("0 9 * * *", tz="Europe/Paris") == expected
    assert Crontab.parse("0 9 * * *", tz=PARIS) == expected
    assert Crontab.parse("0 9 * * * tz=Europe/Paris") == expected
    assert Crontab.parse("0 9 * * * tz=Europe/Paris", tz="Europe/Paris") == expected
    assert Crontab.parse("@daily tz=Europe/Paris") == crontab(minute=0, hour=0, tz=PARIS)
    strict = Crontab.parse("0 9 * * * tz=Europe/Paris reject_seconds=true")
    assert strict.reject_seconds and strict.tz == PARIS
    assert Crontab.parse("0 9 * * *", reject_seconds=True).reject_seconds


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "expected 5 fields (minute hour day month day_of_week) or an alias such as @daily, got 0"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "got 6"),
        ("0 0 1 1 1 2026", "got 6"),
        ("@fortnightly", "unknown alias '@fortnightly'"),
        ("@daily 5", "got 2"),
        ("61 * * * *", "invalid crontab minute '61': 61 is out of range (minute accepts 0-59)"),
        ("* 24 * * *", "invalid crontab hour '24'"),
        ("* * 0 * *", "invalid crontab day '0'"),
        ("* * * 13 *", "invalid crontab month '13'"),
        ("* * * * 8", "invalid crontab day_of_week '8'"),
        ("* * * * MON", "invalid crontab day_of_week 'MON'"),
        ("*/0 * * * *", "the step in '*/0' must be at least 1"),
        ("* * * * * tz=Mars/Base", "invalid crontab tz 'Mars/Base': unknown time zone"),
        ("* * * * * color=red", "unknown or repeated option color='red'"),
        ("* * * * * tz=UTC tz=UTC", "unknown or repeated option tz='UTC'"),
        ("* * * * * reject_seconds=maybe", "unknown or repeated option reject_seconds='maybe'"),
    ],
)
def test_parse_rejects_bad_expressions(text, fragment):
    with pytest.raises(ValueError) as excinfo:
        Crontab.parse(text)
    assert fragment in str(excinfo.value)


def test_parse_rejects_a_tz_option_that_conflicts_with_the_argument():
    with pytest.raises(ValueError, match="tz=Europe/Paris conflicts with tz='UTC'"):
        Crontab.parse("0 9 * * * tz=Europe/Paris", tz="UTC")


def test_parse_rejects_a_non_string():
    with pytest.raises(ValueError, match="expected a str, got int"):
        Crontab.parse(5)


def test_describe_and_repr_give_the_expression_back():
    schedule = crontab(minute="*/5", hour="9-17", day_of_week="1-5")
    assert schedule.describe() == "*/5 9-17 * * 1-5"
    assert repr(schedule) == str(schedule) == "*/5 9-17 * * 1-5"
    assert schedule.expression == "*/5 9-17 * * 1-5"
    assert crontab(minute=0, hour=9, tz="Europe/Paris").describe() == "0 9 * * * tz=Europe/Paris"
    assert crontab(minute=0, hour=9, tz=PARIS).tz_name == "Europe/Paris"
    assert crontab().tz_name is None
    assert crontab(minute=" 1 , 2 ").describe() == "1,2 * * * *"
    assert repr(crontab(minute=0, tz="UTC", reject_seconds=True)) == "0 * * * * tz=UTC reject_seconds=True"


@pytest.mark.parametrize(
    "schedule",
    [
        crontab(),
        crontab(minute="*/5", hour="9-17", day_of_week="1-5"),
        crontab(minute="0,30", hour=2, day="1-7", month="*/3", day_of_week=7, tz="Europe/Paris"),
        crontab(minute=0, reject_seconds=True),
        Crontab.parse("@weekly", tz="America/New_York", reject_seconds=True),
    ],
)
def test_parse_reads_back_describe_and_repr(schedule):
    assert Crontab.parse(repr(schedule)) == schedule
    assert Crontab.parse(schedule.describe(), reject_seconds=schedule.reject_seconds) == schedule
    assert Crontab.parse(repr(schedule)).describe() == schedule.describe()


def test_equality_and_hash_compare_the_schedule_not_the_spelling():
    assert crontab(minute="*/20") == crontab(minute="0,20,40") == Crontab.parse("0-59/20 * * * *")
    assert crontab(day_of_week=7) == crontab(day_of_week=0)
    assert crontab(minute=5) == crontab(minute="5")
    assert hash(crontab(minute="*/20")) == hash(crontab(minute="0,20,40"))
    assert len({crontab(minute="*/30"), crontab(minute="0,30"), crontab(minute="0-59/30")}) == 1

    assert crontab(minute=5) != crontab(minute=6)
    assert crontab(minute=5) != crontab(minute=5, hour=1)
    assert crontab(minute=5) != crontab(minute=5, tz="UTC")
    assert crontab(minute=5, tz="UTC") != crontab(minute=5, tz="Europe/Paris")
    assert crontab(minute=5) != crontab(minute=5, reject_seconds=True)
    assert crontab() != "* * * * *"


def test_schedules_pickle_and_stay_equal():
    schedule = crontab(minute="*/5", hour="9-17", day_of_week="1-5", tz="Europe/Paris")
    clone = pickle.loads(pickle.dumps(schedule))
    assert clone == schedule
    assert clone(utc(2026, 5, 4, 7, 5))


def test_construction_through_the_class_matches_the_function():
    assert Crontab(minute=0, hour="*/2", tz="UTC") == crontab(minute=0, hour="*/2", tz="UTC")
    assert isinstance(crontab(), Crontab)
    assert callable(crontab())
