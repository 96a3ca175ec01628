"""Occurrences: a rule as dateutil computes it, placed in the job's zone.

Calendar rules run over naive wall times and each wall time is then placed
in the zone (``timeutil.resolve_wall``: first instant after a gap, first of
two folds); minutes and hours step in real elapsed time. All comparisons are
made in naive UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta, tzinfo

from dateutil import rrule as du

from ..timeutil import resolve_wall
from .rule import RRULE_HORIZON_YEARS, Rule

# Calendar occurrences after an instant are searched from its wall time less
# this margin. Since resolve_wall is monotonic and takes the first of two
# folds, a wall time before the instant's own never lands after it: the
# margin is a cheap guard (one extra period at most), not a correction.
_WALL_MARGIN = timedelta(days=2)


def utc_to_wall(value: datetime, tz: tzinfo) -> datetime:
    """An aware instant (or naive UTC) as the naive wall time in tz."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz).replace(tzinfo=None)


def wall_to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """A naive wall time in tz as naive UTC, with the DST rules of resolve_wall."""
    return resolve_wall(wall, tz).astimezone(UTC).replace(tzinfo=None)


def as_utc(value: datetime) -> datetime:
    """An aware datetime, or a naive one taken as UTC, as naive UTC."""
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value



def _calendar_kwargs(rule: Rule) -> dict:
    """dateutil keyword arguments (without dtstart) for a calendar rule.

    Everything dateutil would take from DTSTART is explicit, so that the rule
    can restart from any period boundary and still yield the same times.
    """
    if rule.rrule is not None:
        kwargs = dict(rule.rrule_kwargs)
    else:
        kwargs = {"interval": rule.every, "wkst": 0, "byhour": (rule.start.hour,),
                  "byminute": (rule.start.minute,), "bysecond": (rule.start.second,)}
        if rule.pattern == "days":
            kwargs["freq"] = du.DAILY
        elif rule.pattern == "weeks":
            kwargs["freq"] = du.WEEKLY
            kwargs["byweekday"] = rule.weekdays
        else:
            kwargs["freq"] = du.MONTHLY if rule.pattern == "months" else du.YEARLY
            if rule.pattern == "years":
                kwargs["bymonth"] = (rule.month,)
            if rule.nth is not None:
                assert rule.weekday is not None  # nth always comes with its weekday
                kwargs["byweekday"] = (du.weekday(rule.weekday, rule.nth),)
            else:
                assert rule.day is not None  # without nth, parse fills in the day
                if rule.day > 28:
                    # Day D past the month's end means the month's last day: take
                    # the last existing day among 28..D in each month.
                    kwargs["bymonthday"] = tuple(range(28, rule.day + 1))
                    kwargs["bysetpos"] = (-1,)
                else:
                    kwargs["bymonthday"] = (rule.day,)
    kind = rule.end[0]
    kwargs["count"] = rule.end[1] if kind == "after" else None
    if kind == "by":
        kwargs["until"] = datetime.combine(rule.end[1], time(23, 59, 59))
    else:
        kwargs["until"] = rule.rrule_until
    return kwargs


def _period_start(kwargs: dict, start: datetime, lower: datetime) -> datetime | None:
    """The start of the latest rule period at or before `lower`, if after `start`.

    Restarting the rule there skips years of iteration. Periods are counted
    from the start's period in steps of `interval`, as dateutil counts them,
    so the restarted rule yields exactly the original's times from there on.
    """
    freq, interval = kwargs["freq"], kwargs["interval"]
    if freq == du.YEARLY:
        k = (lower.year - start.year) // interval
        return datetime(start.year + k * interval, 1, 1) if k > 0 else None
    if freq == du.MONTHLY:
        first = start.year * 12 + start.month - 1
        k = (lower.year * 12 + lower.month - 1 - first) // interval
        if k <= 0:
            return None
        year, month0 = divmod(first + k * interval, 12)
        return datetime(year, month0 + 1, 1)
    if freq == du.WEEKLY:
        def week_start(value: datetime) -> datetime:
            back = (value.weekday() - kwargs["wkst"]) % 7
            return datetime.combine(value.date() - timedelta(days=back), time())
        k = ((week_start(lower) - week_start(start)).days // 7) // interval
        return week_start(start) + timedelta(weeks=k * interval) if k > 0 else None
    unit = {du.DAILY: timedelta(days=1), du.HOURLY: timedelta(hours=1),
            du.MINUTELY: timedelta(minutes=1)}[freq]
    def floor(value: datetime) -> datetime:
        if freq == du.DAILY:
            return datetime.combine(value.date(), time())
        if freq == du.HOURLY:
            return value.replace(minute=0, second=0, microsecond=0)
        return value.replace(second=0, microsecond=0)
    k = ((floor(lower) - floor(start)) // unit) // interval
    return floor(start) + unit * (k * interval) if k > 0 else None


def _calendar_walls(rule: Rule, lower: datetime | None) -> Iterator[datetime]:
    """Wall times of a calendar rule, from `lower` (inclusive) if given."""
    kwargs = _calendar_kwargs(rule)
    dtstart = rule.start
    if lower is not None and kwargs["count"] is None:
        # A count is relative to the first occurrence, so a counted rule is
        # always iterated from its start; it is short by definition.
        dtstart = _period_start(kwargs, rule.start, lower) or rule.start
    walls = du.rrule(dtstart=dtstart, **kwargs)
    return iter(walls) if lower is None else walls.xafter(lower, inc=True)


def iter_utc(rule: Rule, tz: tzinfo, after: datetime | None) -> Iterator[datetime]:
    """Occurrences as naive UTC, strictly increasing, strictly after `after`."""
    try:
        if rule.elapsed:
            yield from _elapsed_utc(rule, tz, after)
            return
        lower = None
        if after is not None:
            try:
                lower = utc_to_wall(after, tz) - _WALL_MARGIN
            except OverflowError:
                return
        last = after
        for wall in _calendar_walls(rule, lower):
            at = wall_to_utc(wall, tz)
            # Two wall times in one DST gap land on the same instant: run once.
            if last is None or at > last:
                last = at
                yield at
    except OverflowError:
        return  # past datetime.max: the recurrence is over


def _elapsed_utc(rule: Rule, tz: tzinfo, after: datetime | None) -> Iterator[datetime]:
    """Minutes and hours: start instant + k * step, in real elapsed time."""
    step = timedelta(minutes=rule.every) if rule.pattern == "minutes" else timedelta(hours=rule.every)
    first = wall_to_utc(rule.start, tz)
    k = 0 if after is None or after < first else (after - first) // step + 1
    cutoff = None
    if rule.end[0] == "by":
        # Inclusive date in the zone: everything before the next day begins.
        cutoff = wall_to_utc(datetime.combine(rule.end[1] + timedelta(days=1), time()), tz)
    while True:
        if rule.end[0] == "after" and k >= rule.end[1]:
            return
        at = first + step * k
        if cutoff is not None and at >= cutoff:
            return
        yield at
        k += 1


def rrule_has_occurrence(rule: Rule) -> bool:
    """Whether a raw rrule (ignoring its end) has any occurrence at all.

    dateutil checks UNTIL only against results, so an impossible rule
    (BYMONTH=2;BYMONTHDAY=30) is walked period by period to the year 9999:
    seconds for a daily rule. The Gregorian calendar repeats exactly every
    400 years (146097 days, a whole number of weeks), so the same rule
    started 400*k years later yields the same times shifted by 400*k years.
    Shifting the start close to the year 9999 bounds that walk to between
    RRULE_HORIZON_YEARS and RRULE_HORIZON_YEARS + 400 years.
    """
    shift = max(0, (9999 - RRULE_HORIZON_YEARS - rule.start.year) // 400) * 400
    kwargs = _calendar_kwargs(rule)
    kwargs["count"] = kwargs["until"] = None
    walls = du.rrule(dtstart=rule.start.replace(year=rule.start.year + shift), **kwargs)
    return next(iter(walls), None) is not None


