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

from django_tasks_q.crontab.schedule import SEARCH_HORIZON_YEARS, Crontab, crontab

__all__ = ["SEARCH_HORIZON_YEARS", "Crontab", "crontab"]
