"""Recurrence patterns of batch jobs: validate, describe, and compute occurrences.

A recurrence is the JSON object of the job file (cli-contract.md, "Job file")
and of the Recurrence dialog (batch-framework.md, "Recurrence dialog")::

    {"pattern": "months", "every": 1, "nth": "last", "weekday": "fri",
     "start": "2026-12-01T22:00:00", "end": {"after": 12}}
    {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE", "start": "...", "end": {"never": true}}

``normalize`` validates one and returns its canonical form, which is what the
database stores and what every other function here reads. The canonical form
spells out every default (``every``, ``weekdays``, ``day``, ``month``, ``end``)
so that a stored recurrence means the same thing even if defaults change, and
so that ``describe`` can say everything without knowing the job.

Time zones and daylight saving follow Vixie cron, as the reference chooses:

* ``minutes`` and ``hours`` step in real elapsed time from the start instant,
  so an every-30-minutes job keeps its rhythm through both changes.
* ``days`` and longer (and ``rrule``) keep the wall-clock time in the job's
  zone. A wall time that does not exist that day runs at the first instant
  after the gap; one that occurs twice runs once, at its first occurrence
  (``timeutil.resolve_wall``).

Calendar patterns are compiled to ``dateutil.rrule`` over *naive wall times*
and each wall time is then placed in the zone. Computing on naive wall times
(rather than on aware datetimes) matters: Python compares two aware datetimes
that share a tzinfo by their wall time, ignoring ``fold``, which is wrong in
the repeated hour. All comparisons here are therefore made in UTC.

A raw ``rrule`` is RFC 5545 RRULE text without DTSTART, read on the wall
clock of the job's zone (as a calendar with a TZID would), with dateutil's
semantics: the month-end rule of the ``months`` pattern does not apply to it
(BYMONTHDAY=31 skips short months). COUNT and UNTIL are allowed: COUNT
becomes ``end.after`` and a date-only UNTIL ``end.by`` in the canonical form;
an UNTIL with a time stays in the rule, converted to the zone's wall time if
given in UTC. An rrule with COUNT or UNTIL may not also have an ``end``.
FREQ=SECONDLY is refused.

This module must stay free of textual and peewee: the batch server, the
command line and the console all use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Iterator

from dateutil import rrule as du

from .errors import UserError
from .timeutil import resolve_wall, zone

__all__ = [
    "RecurrenceError",
    "PATTERNS",
    "WEEKDAYS",
    "NTHS",
    "normalize",
    "describe",
    "warning",
    "occurrences",
    "next_occurrence",
]

PATTERNS = ("minutes", "hours", "days", "weeks", "months", "years")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NTHS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}

# A bound on "every" (and INTERVAL) keeps the arithmetic far from datetime's
# limits and dateutil's day-by-day month rollover loop fast; 100000 minutes is
# about ten weeks, 100000 days about 270 years.
MAX_EVERY = 100_000
# Dates outside these years are refused, to stay far from datetime's limits
# (9999-12-31 in a zone west of UTC cannot be converted to UTC).
MIN_YEAR, MAX_YEAR = 1900, 9000
# A raw rrule with no occurrence within this many years of its start (in
# fact within 100 to 500 years, see _rrule_has_occurrence) is refused as
# having none.
RRULE_HORIZON_YEARS = 100

_KEYS_COMMON = {"pattern", "every", "start", "end"}
_KEYS_BY_PATTERN = {
    "minutes": set(),
    "hours": set(),
    "days": set(),
    "weeks": {"weekdays"},
    "months": {"day", "nth", "weekday"},
    "years": {"day", "nth", "weekday", "month"},
}
# Keys a caller may leave in the object that are not part of the rule:
# "text" is added by `job export` (so an export imports again) and
# "time_zone" may sit in a file given to `recurrence preview`.
_KEYS_TOLERATED = {"text", "time_zone"}

_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                  "Saturday", "Sunday")
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July",
                "August", "September", "October", "November", "December")
_MONTH_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NTH_BY_NUMBER = {n: name for name, n in NTHS.items()}

# Calendar occurrences after an instant are searched from its wall time less
# this margin. Since resolve_wall is monotonic and takes the first of two
# folds, a wall time before the instant's own never lands after it: the
# margin is a cheap guard (one extra period at most), not a correction.
_WALL_MARGIN = timedelta(days=2)


class RecurrenceError(UserError):
    """A recurrence object that cannot be used; ``field`` names the culprit.

    ``field`` is a path in the job file, e.g. ``recurrence.every`` or
    ``recurrence.end.after``; the message starts with it and says why.
    """

    def __init__(self, field: str, why: str):
        self.field = field
        self.why = why
        super().__init__(f"{field}: {why}")


# ---------------------------------------------------------------------------
# The validated rule
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """A validated recurrence; the single source for every function here."""

    start: datetime               # naive wall time in the job's zone, whole seconds
    end: tuple                    # ("never",) | ("after", N) | ("by", date)
    pattern: str | None = None    # None for a raw rrule
    every: int = 1
    weekdays: tuple[int, ...] = ()   # weeks: 0 = Monday
    day: int | None = None           # months/years: day of month 1..31
    nth: int | None = None           # months/years: 1..4 or -1 (last)
    weekday: int | None = None       # with nth
    month: int | None = None         # years: 1..12
    rrule: str | None = None         # canonical RRULE text (no COUNT, no date-only UNTIL)
    rrule_kwargs: tuple = ()         # dateutil kwargs of the rrule, as sorted items
    rrule_until: datetime | None = None  # UNTIL with a time, as a naive wall time

    @property
    def elapsed(self) -> bool:
        """True when occurrences step in real elapsed time (minutes, hours)."""
        return self.pattern in ("minutes", "hours")


def _fail(field: str, why: str) -> RecurrenceError:
    return RecurrenceError(field, why)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int(value: Any, field: str, lo: int, hi: int | None = None) -> int:
    """A JSON whole number in [lo, hi]. A bool is refused: True is not 1 here."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"expected a whole number, got {_show(value)}")
    if value < lo or (hi is not None and value > hi):
        bounds = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
        raise _fail(field, f"must be a whole number {bounds}, got {value}")
    return value


def _choice(value: Any, field: str, allowed) -> str:
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise _fail(field, f"expected one of {', '.join(allowed)}, got {_show(value)}")
    return value.strip().lower()


def _check_year(value: date, field: str) -> None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise _fail(field, f"year {value.year} is out of range ({MIN_YEAR}-{MAX_YEAR})")


def _utc_to_wall(value: datetime, tz: tzinfo) -> datetime:
    """An aware instant (or naive UTC) as the naive wall time in tz."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(tz).replace(tzinfo=None)


def _wall_to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """A naive wall time in tz as naive UTC, with the DST rules of resolve_wall."""
    return resolve_wall(wall, tz).astimezone(timezone.utc).replace(tzinfo=None)


def _as_utc(value: datetime) -> datetime:
    """An aware datetime, or a naive one taken as UTC, as naive UTC."""
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _parse_start(value: Any, tz: tzinfo | None) -> datetime:
    """The recurrence's start as a naive wall time in the zone.

    A start with an offset is converted to the zone's wall time; without a
    zone (describe, warning) the wall time is taken as written.
    """
    field = "recurrence.start"
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        raw = value.strip()
        if raw[-1:] in ("Z", "z"):
            raw = raw[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise _fail(field, f"{value!r} is not an ISO 8601 date/time "
                               "(e.g. 2026-12-01T22:00:00)") from None
    else:
        raise _fail(field, f"expected an ISO 8601 date/time, got {_show(value)}")
    _check_year(parsed, field)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(tz).replace(tzinfo=None) if tz else parsed.replace(tzinfo=None)
    # dateutil drops microseconds from dtstart; do it for every pattern alike.
    return parsed.replace(microsecond=0)


def _parse_end(value: Any) -> tuple:
    if value is None:
        return ("never",)
    if not isinstance(value, dict):
        raise _fail("recurrence.end", 'expected {"never": true}, {"after": N} '
                                      f'or {{"by": "YYYY-MM-DD"}}, got {_show(value)}')
    unknown = sorted(set(value) - {"never", "after", "by"}, key=str)
    if unknown:
        raise _fail(f"recurrence.end.{unknown[0]}",
                    "unknown key; the end is one of never, after, by")
    if len(value) != 1:
        why = "is empty" if not value else f"has {', '.join(sorted(value))}"
        raise _fail("recurrence.end", f"{why}; give exactly one of never, after, by")
    (key, item), = value.items()
    if key == "never":
        if item is not True:
            raise _fail("recurrence.end.never",
                        f"must be true (use after or by to end), got {_show(item)}")
        return ("never",)
    if key == "after":
        return ("after", _int(item, "recurrence.end.after", 1))
    # key == "by": a calendar date in the job's zone, inclusive.
    field = "recurrence.end.by"
    if isinstance(item, date) and not isinstance(item, datetime):
        by = item
    elif isinstance(item, str):
        try:
            by = date.fromisoformat(item.strip())
        except ValueError:
            raise _fail(field, f"{item!r} is not a date YYYY-MM-DD") from None
    else:
        raise _fail(field, f"expected a date YYYY-MM-DD, got {_show(item)}")
    _check_year(by, field)
    return ("by", by)


def _parse(spec: Any, tz: tzinfo | None, default_start: datetime | None) -> _Rule:
    """Validate a recurrence object into a _Rule (no check for occurrences).

    tz may be None (describe, warning): then a start with an offset is read
    as written and an rrule UNTIL in UTC stays in UTC.
    """
    if not isinstance(spec, dict):
        raise _fail("recurrence", f"expected an object, got {_show(spec)}")
    for key in spec:
        if not isinstance(key, str):
            raise _fail("recurrence", f"unknown key {_show(key)}")
    if "text" in spec and not isinstance(spec["text"], str):
        raise _fail("recurrence.text", f"expected text, got {_show(spec['text'])}")

    if "start" in spec and spec["start"] is not None:
        start = _parse_start(spec["start"], tz)
    elif isinstance(default_start, datetime):
        # The job's scheduled start: naive UTC (or aware), as stored.
        start = _parse_start(default_start if tz is None else
                             _utc_to_wall(default_start, tz), None)
    elif default_start is not None:
        start = _parse_start(default_start, tz)  # text, read like "start"
    else:
        raise _fail("recurrence.start", "is required")
    end = _parse_end(spec.get("end"))

    if "rrule" in spec:
        if "pattern" in spec:
            raise _fail("recurrence.rrule", "give either pattern or rrule, not both")
        unknown = sorted(set(spec) - {"rrule", "start", "end"} - _KEYS_TOLERATED)
        if unknown:
            raise _fail(f"recurrence.{unknown[0]}", "unknown key for an rrule recurrence "
                                                    "(allowed: rrule, start, end)")
        return _parse_rrule(spec["rrule"], start, end, tz)

    if "pattern" not in spec:
        raise _fail("recurrence.pattern", f"is required: one of {', '.join(PATTERNS)} "
                                          "(or give an rrule)")
    pattern = _choice(spec["pattern"], "recurrence.pattern", PATTERNS)
    allowed = _KEYS_COMMON | _KEYS_BY_PATTERN[pattern] | _KEYS_TOLERATED
    for key in sorted(spec):
        if key not in allowed:
            used = any(key in keys for keys in _KEYS_BY_PATTERN.values())
            raise _fail(f"recurrence.{key}", f"not used by the {pattern} pattern"
                        if used else "unknown key")
    # A key given as null means "the default", as an absent key does.
    every = spec.get("every")
    every = 1 if every is None else _int(every, "recurrence.every", 1, MAX_EVERY)
    rule = dict(start=start, end=end, pattern=pattern, every=every)

    if pattern == "weeks":
        rule["weekdays"] = _parse_weekdays(spec.get("weekdays"), start)
    elif pattern in ("months", "years"):
        rule.update(_parse_day(spec, start))
        if pattern == "years":
            month = spec.get("month")
            rule["month"] = start.month if month is None else _int(
                month, "recurrence.month", 1, 12)
    return _Rule(**rule)


def _parse_weekdays(value: Any, start: datetime) -> tuple[int, ...]:
    field = "recurrence.weekdays"
    if value is None:
        return (start.weekday(),)
    if not isinstance(value, list) or not value:
        raise _fail(field, f"expected a non-empty list of {', '.join(WEEKDAYS)}, "
                           f"got {_show(value)}")
    days = {WEEKDAYS.index(_choice(item, field, WEEKDAYS)) for item in value}
    return tuple(sorted(days))


def _parse_day(spec: dict, start: datetime) -> dict:
    """Either day D of the month, or the nth weekday; default: the start's day."""
    has_day = spec.get("day") is not None
    has_nth = spec.get("nth") is not None
    has_weekday = spec.get("weekday") is not None
    if has_day and (has_nth or has_weekday):
        raise _fail("recurrence.day", "give either day or nth with weekday, not both")
    if has_nth != has_weekday:
        if has_nth:
            raise _fail("recurrence.weekday", "is required with nth")
        raise _fail("recurrence.nth", "is required with weekday "
                                      "(first, second, third, fourth, last)")
    if has_nth:
        nth = NTHS[_choice(spec["nth"], "recurrence.nth", tuple(NTHS))]
        weekday = WEEKDAYS.index(_choice(spec["weekday"], "recurrence.weekday", WEEKDAYS))
        return {"nth": nth, "weekday": weekday}
    return {"day": start.day if not has_day else _int(spec["day"], "recurrence.day", 1, 31)}


# ---------------------------------------------------------------------------
# Raw RFC 5545 rules
# ---------------------------------------------------------------------------

_FREQS = {"YEARLY": du.YEARLY, "MONTHLY": du.MONTHLY, "WEEKLY": du.WEEKLY,
          "DAILY": du.DAILY, "HOURLY": du.HOURLY, "MINUTELY": du.MINUTELY}
_RFC_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Integer list parts: dateutil keyword, allowed values (0 never allowed where
# negative values are).
_INT_LISTS = {
    "BYMONTH": ("bymonth", 1, 12, False),
    "BYMONTHDAY": ("bymonthday", 1, 31, True),
    "BYYEARDAY": ("byyearday", 1, 366, True),
    "BYWEEKNO": ("byweekno", 1, 53, True),
    "BYHOUR": ("byhour", 0, 23, False),
    "BYMINUTE": ("byminute", 0, 59, False),
    "BYSECOND": ("bysecond", 0, 59, False),
    "BYSETPOS": ("bysetpos", 1, 366, True),
}
_RRULE_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYDAY", *_INT_LISTS}
_UNTIL_RE = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")
_INT_RE = re.compile(r"^[+-]?\d{1,4}$")
_BYDAY_RE = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")


def _parse_rrule(text: Any, start: datetime, end: tuple, tz: tzinfo | None) -> _Rule:
    """Validate RRULE text (RFC 5545, without DTSTART) into a _Rule.

    COUNT is moved to end.after and a date-only UNTIL to end.by, so the end
    of a recurrence lives in one place; UNTIL with a time stays in the rule
    as a wall time in the job's zone (converted from UTC when it ends in Z).
    SECONDLY is refused: the shortest pattern is a minute.
    """
    field = "recurrence.rrule"
    if not isinstance(text, str) or not text.strip():
        raise _fail(field, f"expected RRULE text such as FREQ=WEEKLY;BYDAY=MO, got {_show(text)}")
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if "DTSTART" in body.upper():
        raise _fail(field, "DTSTART is not allowed in the rule; use recurrence.start")
    if any(ch.isspace() for ch in body) or ":" in body:
        raise _fail(field, "expected one RRULE line without DTSTART, EXDATE or RDATE")

    parts: dict[str, str] = {}
    order: list[str] = []
    for chunk in body.split(";"):
        name, sep, value = chunk.partition("=")
        name, value = name.upper(), value.upper()
        if not sep or not name or not value:
            raise _fail(field, f"{chunk!r} is not NAME=VALUE")
        if name not in _RRULE_PARTS:
            raise _fail(field, f"unknown or unsupported part {name}")
        if name in parts:
            raise _fail(field, f"{name} is given twice")
        parts[name] = value
        order.append(name)

    if "FREQ" not in parts:
        raise _fail(field, "FREQ is required")
    if parts["FREQ"] not in _FREQS:
        why = ("SECONDLY is not supported; the shortest recurrence is a minute"
               if parts["FREQ"] == "SECONDLY" else f"unknown FREQ {parts['FREQ']}")
        raise _fail(field, why)
    freq = _FREQS[parts["FREQ"]]
    kwargs: dict[str, Any] = {"freq": freq, "interval": 1, "wkst": 0}

    def ints(name: str, lo: int, hi: int, signed: bool) -> list[int]:
        values = []
        for item in parts[name].split(","):
            if not _INT_RE.match(item):
                raise _fail(field, f"{name}: {item!r} is not a whole number")
            number = int(item)
            if not (lo <= abs(number) <= hi and (signed or number >= 0)):
                raise _fail(field, f"{name}: {number} is out of range")
            values.append(number)
        return values

    def one_int(name: str, hi: int) -> int:
        if "," in parts[name]:
            raise _fail(field, f"{name} takes one number")
        return ints(name, 1, hi, False)[0]

    if "INTERVAL" in parts:
        kwargs["interval"] = one_int("INTERVAL", MAX_EVERY)
    if "WKST" in parts:
        if parts["WKST"] not in _RFC_DAYS:
            raise _fail(field, f"WKST: {parts['WKST']!r} is not a weekday (MO..SU)")
        kwargs["wkst"] = _RFC_DAYS.index(parts["WKST"])
    for name, (key, lo, hi, signed) in _INT_LISTS.items():
        if name in parts:
            kwargs[key] = tuple(ints(name, lo, hi, signed))
    if "BYDAY" in parts:
        days = []
        for item in parts["BYDAY"].split(","):
            match = _BYDAY_RE.match(item)
            if not match:
                raise _fail(field, f"BYDAY: {item!r} is not a weekday such as MO or -1FR")
            n = int(match.group(1)) if match.group(1) else None
            if n is not None:
                if freq not in (du.MONTHLY, du.YEARLY):
                    raise _fail(field, "BYDAY: a numbered weekday needs FREQ=MONTHLY or YEARLY")
                if n == 0 or abs(n) > (5 if freq == du.MONTHLY else 53):
                    raise _fail(field, f"BYDAY: {item} is out of range")
            days.append(du.weekday(_RFC_DAYS.index(match.group(2)), n))
        kwargs["byweekday"] = tuple(days)

    canonical = [name for name in order if name not in ("COUNT", "UNTIL")]
    until = None
    if "COUNT" in parts or "UNTIL" in parts:
        if "COUNT" in parts and "UNTIL" in parts:
            raise _fail(field, "COUNT and UNTIL cannot both be given (RFC 5545)")
        if end != ("never",):
            raise _fail("recurrence.end", "the rrule already ends (COUNT or UNTIL); "
                                          "give the end in one place")
        if "COUNT" in parts:
            end = ("after", one_int("COUNT", 10**9))
        else:
            end, until = _parse_until(parts["UNTIL"], tz)
            if until is not None:
                canonical.append("UNTIL")
                parts["UNTIL"] = until.strftime("%Y%m%dT%H%M%S")

    # Fill in what dateutil would take from DTSTART, so that the rule can be
    # restarted from a later DTSTART (see _Schedule) and mean the same thing.
    if not any(k in kwargs for k in ("byweekno", "byyearday", "bymonthday", "byweekday")):
        if freq == du.YEARLY:
            kwargs.setdefault("bymonth", (start.month,))
            kwargs["bymonthday"] = (start.day,)
        elif freq == du.MONTHLY:
            kwargs["bymonthday"] = (start.day,)
        elif freq == du.WEEKLY:
            kwargs["byweekday"] = (start.weekday(),)
    if freq < du.HOURLY:
        kwargs.setdefault("byhour", (start.hour,))
    if freq < du.MINUTELY:
        kwargs.setdefault("byminute", (start.minute,))
    kwargs.setdefault("bysecond", (start.second,))

    try:
        du.rrule(dtstart=start, until=until, **kwargs)
    except (ValueError, TypeError) as exc:
        raise _fail(field, f"not a valid rule: {exc}") from None
    text_out = ";".join(f"{name}={parts[name]}" for name in canonical)
    return _Rule(start=start, end=end, rrule=text_out,
                 rrule_kwargs=tuple(sorted(kwargs.items())), rrule_until=until)


def _parse_until(value: str, tz: tzinfo | None) -> tuple[tuple, datetime | None]:
    """UNTIL as (end, wall-time until): a date becomes end.by (inclusive)."""
    field = "recurrence.rrule"
    match = _UNTIL_RE.match(value)
    if not match:
        raise _fail(field, f"UNTIL: {value!r} is not YYYYMMDD or YYYYMMDDTHHMMSS[Z]")
    try:
        day = datetime.strptime(match.group(1), "%Y%m%d").date()
        _check_year(day, field)
        if match.group(2) is None:
            return ("by", day), None
        at = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S")
    except ValueError:
        raise _fail(field, f"UNTIL: {value!r} is not a valid date/time") from None
    if match.group(3) and tz is not None:
        at = _utc_to_wall(at, tz)
    return ("never",), at


# ---------------------------------------------------------------------------
# Canonical form and sentence
# ---------------------------------------------------------------------------


def _to_dict(rule: _Rule) -> dict:
    out: dict[str, Any] = {}
    if rule.rrule is not None:
        out["rrule"] = rule.rrule
    else:
        out["pattern"] = rule.pattern
        out["every"] = rule.every
        if rule.pattern == "weeks":
            out["weekdays"] = [WEEKDAYS[d] for d in rule.weekdays]
        if rule.pattern == "years":
            out["month"] = rule.month
        if rule.day is not None:
            out["day"] = rule.day
        if rule.nth is not None:
            out["nth"] = _NTH_BY_NUMBER[rule.nth]
            out["weekday"] = WEEKDAYS[rule.weekday]
    out["start"] = rule.start.isoformat(timespec="seconds")
    kind = rule.end[0]
    if kind == "never":
        out["end"] = {"never": True}
    elif kind == "after":
        out["end"] = {"after": rule.end[1]}
    else:
        out["end"] = {"by": rule.end[1].isoformat()}
    return out


def _clock(value: datetime | time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def _end_phrase(rule: _Rule) -> str:
    kind = rule.end[0]
    if rule.rrule_until is not None:
        return f"until {rule.rrule_until:%Y-%m-%d} {_clock(rule.rrule_until)}"
    if kind == "never":
        return "no end date"
    if kind == "after":
        return "once" if rule.end[1] == 1 else f"{rule.end[1]} times"
    return f"until {rule.end[1].isoformat()}"


def _day_phrase(rule: _Rule) -> str:
    """'on day 15', 'on the last Friday of March', 'on the last day of April'..."""
    of_month = f" of {_MONTH_NAMES[rule.month - 1]}" if rule.pattern == "years" else ""
    if rule.nth is not None:
        return f"on the {_NTH_BY_NUMBER[rule.nth]} {_WEEKDAY_NAMES[rule.weekday]}{of_month}"
    if rule.pattern == "years":
        longest = _MONTH_MAX_DAYS[rule.month - 1]
        if rule.day > longest or (rule.month == 2 and rule.day >= 29):
            return f"on the last day{of_month}"
        return f"on {_MONTH_NAMES[rule.month - 1]} {rule.day}"
    if rule.day == 31:
        return "on the last day"
    if rule.day > 28:
        return f"on day {rule.day} (or the last day)"
    return f"on day {rule.day}"


def _sentence(rule: _Rule) -> str:
    if rule.rrule is not None:
        shown = ";".join(p for p in rule.rrule.split(";") if not p.startswith("UNTIL="))
        text = f"By rule {shown}, {_end_phrase(rule)}"
        return text if len(text) <= 200 else text[:199] + "…"
    unit = rule.pattern[:-1]
    head = f"Every {unit}" if rule.every == 1 else f"Every {rule.every} {rule.pattern}"
    if rule.elapsed:
        return f"{head}, {_end_phrase(rule)}"
    if rule.pattern == "weeks":
        head += " on " + ", ".join(_WEEKDAY_NAMES[d] for d in rule.weekdays)
    elif rule.pattern in ("months", "years"):
        head += " " + _day_phrase(rule)
    return f"{head} at {_clock(rule.start)}, {_end_phrase(rule)}"


# ---------------------------------------------------------------------------
# Occurrences
# ---------------------------------------------------------------------------


def _calendar_kwargs(rule: _Rule) -> dict:
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
                kwargs["byweekday"] = (du.weekday(rule.weekday, rule.nth),)
            elif rule.day > 28:
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


def _calendar_walls(rule: _Rule, lower: datetime | None) -> Iterator[datetime]:
    """Wall times of a calendar rule, from `lower` (inclusive) if given."""
    kwargs = _calendar_kwargs(rule)
    dtstart = rule.start
    if lower is not None and kwargs["count"] is None:
        # A count is relative to the first occurrence, so a counted rule is
        # always iterated from its start; it is short by definition.
        dtstart = _period_start(kwargs, rule.start, lower) or rule.start
    walls = du.rrule(dtstart=dtstart, **kwargs)
    return iter(walls) if lower is None else walls.xafter(lower, inc=True)


def _iter_utc(rule: _Rule, tz: tzinfo, after: datetime | None) -> Iterator[datetime]:
    """Occurrences as naive UTC, strictly increasing, strictly after `after`."""
    try:
        if rule.elapsed:
            yield from _elapsed_utc(rule, tz, after)
            return
        lower = None
        if after is not None:
            try:
                lower = _utc_to_wall(after, tz) - _WALL_MARGIN
            except OverflowError:
                return
        last = after
        for wall in _calendar_walls(rule, lower):
            at = _wall_to_utc(wall, tz)
            # Two wall times in one DST gap land on the same instant: run once.
            if last is None or at > last:
                last = at
                yield at
    except OverflowError:
        return  # past datetime.max: the recurrence is over


def _elapsed_utc(rule: _Rule, tz: tzinfo, after: datetime | None) -> Iterator[datetime]:
    """Minutes and hours: start instant + k * step, in real elapsed time."""
    step = timedelta(minutes=rule.every) if rule.pattern == "minutes" else timedelta(hours=rule.every)
    first = _wall_to_utc(rule.start, tz)
    k = 0 if after is None or after < first else (after - first) // step + 1
    cutoff = None
    if rule.end[0] == "by":
        # Inclusive date in the zone: everything before the next day begins.
        cutoff = _wall_to_utc(datetime.combine(rule.end[1] + timedelta(days=1), time()), tz)
    while True:
        if rule.end[0] == "after" and k >= rule.end[1]:
            return
        at = first + step * k
        if cutoff is not None and at >= cutoff:
            return
        yield at
        k += 1


def _rrule_has_occurrence(rule: _Rule) -> bool:
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


def _zone(name: str) -> tzinfo:
    try:
        return zone(name)
    except UserError as exc:
        raise _fail("time_zone", str(exc)) from None


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def normalize(spec: dict, *, default_start: datetime, time_zone: str) -> dict:
    """Validate a recurrence object as in the job file; return its canonical form.

    default_start is the job's scheduled start (naive UTC, or aware) and is
    used when the object has no "start"; time_zone is the job's IANA zone.
    The result is JSON-serializable and holds "start" (naive wall time in
    the zone), either "pattern" + "every" + the pattern's options with every
    default filled in, or "rrule", and "end". Raises RecurrenceError naming
    the field, including for a recurrence that has no occurrence at all.
    """
    tz = _zone(time_zone)
    if isinstance(spec, dict) and spec.get("time_zone") not in (None, time_zone):
        raise _fail("recurrence.time_zone",
                    f"{spec['time_zone']!r} differs from the job's time zone {time_zone!r}")
    rule = _parse(spec, tz, default_start)
    if rule.rrule is not None and not _rrule_has_occurrence(rule):
        raise _fail("recurrence.rrule", "has no occurrence (within "
                                        f"{RRULE_HORIZON_YEARS} years of the start)")
    # Every pattern has occurrences, so this search ends at the first one, or
    # at the first one past the end.
    if next(_iter_utc(rule, tz, None), None) is None:
        start = rule.start.isoformat(timespec="seconds")
        if rule.end[0] == "by":
            raise _fail("recurrence.end.by", f"{rule.end[1].isoformat()} leaves no "
                                             f"occurrence (the recurrence starts {start})")
        if rule.rrule_until is not None:
            raise _fail("recurrence.rrule", f"UNTIL leaves no occurrence (the "
                                            f"recurrence starts {start})")
        raise _fail("recurrence.every", "leaves no occurrence before the year 10000")
    return _to_dict(rule)


def describe(spec: dict) -> str:
    """The sentence shown on the job, e.g. "Every month on the last Friday at
    22:00, 12 times" or "Every 10 minutes, no end date".

    Days and longer patterns say the time of day (it is part of the rule);
    minutes and hours do not (they step from the start, whatever the clock).
    The spec should be normalized (it needs its "start").
    """
    return _sentence(_parse(spec, None, None))


def warning(spec: dict) -> str | None:
    """A warning for the console about a legal but unwise recurrence, else None.

    The ERP warns against one-minute recurrences: its scheduler polls once a
    minute, and every run lands in the batch job history.
    """
    rule = _parse(spec, None, None)
    if rule.rrule is not None:
        # FREQ=MINUTELY without INTERVAL or any BY part runs every minute too.
        names = {part.split("=")[0] for part in rule.rrule.split(";")}
        every_minute = "FREQ=MINUTELY" in rule.rrule.split(";") and not (
            names - {"FREQ", "WKST", "UNTIL"})
    else:
        every_minute = rule.pattern == "minutes" and rule.every == 1
    if every_minute:
        return ("A recurrence every minute adds 1,440 runs a day to the batch job "
                "history; consider a longer interval.")
    return None


def occurrences(spec: dict, time_zone: str, *, after: datetime | None = None,
                count: int = 10) -> list[datetime]:
    """Up to `count` occurrences as aware datetimes in time_zone.

    Strictly after `after` (aware, or naive UTC) if given, else from the
    start (the start itself only if it fits the pattern). Note: compare the
    results in UTC; Python compares datetimes sharing a zone by wall time.
    """
    tz = _zone(time_zone)
    rule = _parse(spec, tz, None)
    found: list[datetime] = []
    if count <= 0:
        return found
    for at in _iter_utc(rule, tz, None if after is None else _as_utc(after)):
        found.append(at.replace(tzinfo=timezone.utc).astimezone(tz))
        if len(found) >= count:
            break
    return found


def next_occurrence(spec: dict, time_zone: str, after: datetime) -> datetime | None:
    """The first occurrence strictly after `after` (naive UTC or aware), as
    naive UTC; None when the recurrence is over.

    Called after every run of a recurring job, so it never walks from the
    start: minutes and hours are computed arithmetically, calendar rules
    restart at the latest period boundary before `after`.
    """
    tz = _zone(time_zone)
    rule = _parse(spec, tz, None)
    return next(_iter_utc(rule, tz, _as_utc(after)), None)
