"""Times: stored as naive UTC datetimes, shown as ISO 8601 with an offset.

Every time in the database is a naive datetime in UTC with microseconds. Input
may carry an offset; a time without one is read in the job's time zone.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, tzinfo
from typing import overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import tz as dtz

from .errors import UserError

_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    """Now, as a naive UTC datetime. The same as datetime.now(UTC).replace(tzinfo=None), exactly
    (timedelta arithmetic keeps every microsecond), in a quarter of the time: a batch server
    reads the clock a few times per attempt (issue 17), and replace() is slow on Python 3.11."""
    return _EPOCH + (datetime.now(UTC) - _EPOCH_UTC)


def machine_zone() -> str:
    """The machine's IANA zone name (TZ, /etc/timezone, /etc/localtime), else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name and _valid_zone(name):
        return name
    try:
        with open("/etc/timezone") as fh:
            name = fh.read().strip()
        if _valid_zone(name):
            return name
    except OSError:
        pass
    try:
        link = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in link:
            name = link.split("zoneinfo/", 1)[1]
            if _valid_zone(name):
                return name
    except OSError:
        pass
    return "UTC"


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone(name: str) -> tzinfo:
    """The tzinfo for an IANA name; UserError when there is no such zone."""
    if not isinstance(name, str) or not name or not _valid_zone(name):
        raise UserError(f"unknown time zone {name!r}")
    return ZoneInfo(name)


def check_zone(name: str) -> str:
    zone(name)
    return name


def resolve_wall(naive: datetime, tz: tzinfo) -> datetime:
    """A wall time in tz as an aware datetime.

    A wall time that does not exist (spring forward) is moved to the first
    instant after the gap (02:30 becomes 03:00); one that occurs twice (fall
    back) is its first occurrence.
    """
    aware = naive.replace(tzinfo=tz, fold=0)
    if dtz.datetime_exists(aware):
        return aware
    # In a gap, the two folds read the wall time with the offsets before and
    # after the transition; the transition instant lies between them.
    a = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    b = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo, hi = min(a, b), max(a, b)
    after = hi.astimezone(tz).utcoffset()
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0).astimezone(tz)


def to_utc(value: datetime, tz: tzinfo | None = None) -> datetime:
    """An aware or naive-in-tz datetime as naive UTC."""
    if value.tzinfo is None:
        if tz is None:
            raise ValueError("naive time with no zone")
        value = resolve_wall(value, tz)
    return value.astimezone(UTC).replace(tzinfo=None)


def iso(value: datetime | None, tz_name: str | None = None) -> str | None:
    """Naive UTC as ISO 8601 with offset, in tz_name (default UTC), milliseconds."""
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC)
    if tz_name:
        aware = aware.astimezone(zone(tz_name))
    return aware.isoformat(timespec="milliseconds")


@overload
def local(value: datetime, tz_name: str) -> datetime: ...
@overload
def local(value: None, tz_name: str) -> None: ...
def local(value: datetime | None, tz_name: str) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC).astimezone(zone(tz_name))
