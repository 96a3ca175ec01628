"""Reading a recurrence: the job file's object, or RFC 5545 RRULE text, into a Rule.

Every refusal is a RecurrenceError naming the field (``recurrence.every``,
``recurrence.end.after``...), with why.
"""

from __future__ import annotations

import re
from datetime import date, datetime, tzinfo
from typing import Any

from dateutil import rrule as du

from .occurrence import utc_to_wall
from .rule import (
    MAX_EVERY,
    MAX_YEAR,
    MIN_YEAR,
    NTHS,
    PATTERNS,
    WEEKDAYS,
    RecurrenceError,
    Rule,
)

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
# "time_zone" may sit in a file given to `recurrence preview`. "calendar" and
# "on_closed_day" are read apart (closed.py): they filter the rule's occurrences.
_KEYS_TOLERATED = {"text", "time_zone", "calendar", "on_closed_day"}


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


def parse(spec: Any, tz: tzinfo | None, default_start: datetime | None) -> Rule:
    """Validate a recurrence object into a Rule (no check for occurrences).

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
    start = _start_of(spec, tz, default_start)
    end = _parse_end(spec.get("end"))

    if "rrule" in spec:
        if "pattern" in spec:
            raise _fail("recurrence.rrule", "give either pattern or rrule, not both")
        unknown = sorted(set(spec) - {"rrule", "start", "end"} - _KEYS_TOLERATED)
        if unknown:
            raise _fail(f"recurrence.{unknown[0]}", "unknown key for an rrule recurrence "
                                                    "(allowed: rrule, start, end)")
        return _parse_rrule(spec["rrule"], start, end, tz)
    return _parse_pattern(spec, start, end)


def _start_of(spec: dict, tz: tzinfo | None, default_start: datetime | None) -> datetime:
    """The object's start, else the job's scheduled start, as a naive wall time."""
    if "start" in spec and spec["start"] is not None:
        return _parse_start(spec["start"], tz)
    if isinstance(default_start, datetime):
        # The job's scheduled start: naive UTC (or aware), as stored.
        return _parse_start(default_start if tz is None else
                            utc_to_wall(default_start, tz), None)
    if default_start is not None:
        return _parse_start(default_start, tz)  # text, read like "start"
    raise _fail("recurrence.start", "is required")


def _parse_pattern(spec: dict, start: datetime, end: tuple) -> Rule:
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
    weekdays: tuple[int, ...] = ()
    day = nth = weekday = month = None
    if pattern == "weeks":
        weekdays = _parse_weekdays(spec.get("weekdays"), start)
    elif pattern in ("months", "years"):
        day, nth, weekday = _parse_day(spec, start)
        if pattern == "years":
            month = spec.get("month")
            month = start.month if month is None else _int(month, "recurrence.month", 1, 12)
    return Rule(start=start, end=end, pattern=pattern, every=every, weekdays=weekdays,
                day=day, nth=nth, weekday=weekday, month=month)


def _parse_weekdays(value: Any, start: datetime) -> tuple[int, ...]:
    field = "recurrence.weekdays"
    if value is None:
        return (start.weekday(),)
    if not isinstance(value, list) or not value:
        raise _fail(field, f"expected a non-empty list of {', '.join(WEEKDAYS)}, "
                           f"got {_show(value)}")
    days = {WEEKDAYS.index(_choice(item, field, WEEKDAYS)) for item in value}
    return tuple(sorted(days))


def _parse_day(spec: dict, start: datetime) -> tuple[int | None, int | None, int | None]:
    """(day, nth, weekday): either day D of the month, or the nth weekday;
    default: the start's day."""
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
        return None, nth, weekday
    return (start.day if not has_day else _int(spec["day"], "recurrence.day", 1, 31)), None, None


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


_RRULE_FIELD = "recurrence.rrule"


def _parse_rrule(text: Any, start: datetime, end: tuple, tz: tzinfo | None) -> Rule:
    """Validate RRULE text (RFC 5545, without DTSTART) into a Rule.

    COUNT is moved to end.after and a date-only UNTIL to end.by, so the end
    of a recurrence lives in one place; UNTIL with a time stays in the rule
    as a wall time in the job's zone (converted from UTC when it ends in Z).
    SECONDLY is refused: the shortest pattern is a minute.
    """
    parts, order = _rrule_parts(text)
    freq = _rrule_freq(parts)
    kwargs = _rrule_kwargs(parts, freq)
    end, until, canonical = _rrule_end(parts, order, end, tz)
    _fill_from_start(kwargs, freq, start)
    try:
        du.rrule(dtstart=start, until=until, **kwargs)
    except (ValueError, TypeError) as exc:
        raise _fail(_RRULE_FIELD, f"not a valid rule: {exc}") from None
    text_out = ";".join(f"{name}={parts[name]}" for name in canonical)
    return Rule(start=start, end=end, rrule=text_out,
                rrule_kwargs=tuple(sorted(kwargs.items())), rrule_until=until)


def _rrule_parts(text: Any) -> tuple[dict[str, str], list[str]]:
    """The rule's NAME=VALUE parts (upper case), and their names in the given order."""
    field = _RRULE_FIELD
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
    return parts, order


def _rrule_freq(parts: dict[str, str]) -> int:
    if "FREQ" not in parts:
        raise _fail(_RRULE_FIELD, "FREQ is required")
    if parts["FREQ"] not in _FREQS:
        why = ("SECONDLY is not supported; the shortest recurrence is a minute"
               if parts["FREQ"] == "SECONDLY" else f"unknown FREQ {parts['FREQ']}")
        raise _fail(_RRULE_FIELD, why)
    return _FREQS[parts["FREQ"]]


def _rrule_ints(parts: dict[str, str], name: str, lo: int, hi: int, signed: bool) -> list[int]:
    values = []
    for item in parts[name].split(","):
        if not _INT_RE.match(item):
            raise _fail(_RRULE_FIELD, f"{name}: {item!r} is not a whole number")
        number = int(item)
        if not (lo <= abs(number) <= hi and (signed or number >= 0)):
            raise _fail(_RRULE_FIELD, f"{name}: {number} is out of range")
        values.append(number)
    return values


def _rrule_one_int(parts: dict[str, str], name: str, hi: int) -> int:
    if "," in parts[name]:
        raise _fail(_RRULE_FIELD, f"{name} takes one number")
    return _rrule_ints(parts, name, 1, hi, False)[0]


def _rrule_kwargs(parts: dict[str, str], freq: int) -> dict[str, Any]:
    """dateutil keyword arguments of the rule's parts, COUNT and UNTIL aside."""
    kwargs: dict[str, Any] = {"freq": freq, "interval": 1, "wkst": 0}
    if "INTERVAL" in parts:
        kwargs["interval"] = _rrule_one_int(parts, "INTERVAL", MAX_EVERY)
    if "WKST" in parts:
        if parts["WKST"] not in _RFC_DAYS:
            raise _fail(_RRULE_FIELD, f"WKST: {parts['WKST']!r} is not a weekday (MO..SU)")
        kwargs["wkst"] = _RFC_DAYS.index(parts["WKST"])
    for name, (key, lo, hi, signed) in _INT_LISTS.items():
        if name in parts:
            kwargs[key] = tuple(_rrule_ints(parts, name, lo, hi, signed))
    if "BYDAY" in parts:
        kwargs["byweekday"] = _rrule_byday(parts["BYDAY"], freq)
    return kwargs


def _rrule_byday(value: str, freq: int) -> tuple[du.weekday, ...]:
    days = []
    for item in value.split(","):
        match = _BYDAY_RE.match(item)
        if not match:
            raise _fail(_RRULE_FIELD, f"BYDAY: {item!r} is not a weekday such as MO or -1FR")
        n = int(match.group(1)) if match.group(1) else None
        if n is not None:
            if freq not in (du.MONTHLY, du.YEARLY):
                raise _fail(_RRULE_FIELD, "BYDAY: a numbered weekday needs FREQ=MONTHLY or YEARLY")
            if n == 0 or abs(n) > (5 if freq == du.MONTHLY else 53):
                raise _fail(_RRULE_FIELD, f"BYDAY: {item} is out of range")
        days.append(du.weekday(_RFC_DAYS.index(match.group(2)), n))
    return tuple(days)


def _rrule_end(parts: dict[str, str], order: list[str], end: tuple,
               tz: tzinfo | None) -> tuple[tuple, datetime | None, list[str]]:
    """The end (COUNT and a date-only UNTIL move there), the UNTIL with a time,
    and the names of the parts the canonical text keeps (UNTIL rewritten in parts)."""
    canonical = [name for name in order if name not in ("COUNT", "UNTIL")]
    until = None
    if "COUNT" in parts or "UNTIL" in parts:
        if "COUNT" in parts and "UNTIL" in parts:
            raise _fail(_RRULE_FIELD, "COUNT and UNTIL cannot both be given (RFC 5545)")
        if end != ("never",):
            raise _fail("recurrence.end", "the rrule already ends (COUNT or UNTIL); "
                                          "give the end in one place")
        if "COUNT" in parts:
            end = ("after", _rrule_one_int(parts, "COUNT", 10**9))
        else:
            end, until = _parse_until(parts["UNTIL"], tz)
            if until is not None:
                canonical.append("UNTIL")
                parts["UNTIL"] = until.strftime("%Y%m%dT%H%M%S")
    return end, until, canonical


def _fill_from_start(kwargs: dict[str, Any], freq: int, start: datetime) -> None:
    """Fill in what dateutil would take from DTSTART, so that the rule can be
    restarted from a later DTSTART (see occurrence._period_start) and mean the
    same thing."""
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


def _parse_until(value: str, tz: tzinfo | None) -> tuple[tuple, datetime | None]:
    """UNTIL as (end, wall-time until): a date becomes end.by (inclusive)."""
    field = _RRULE_FIELD
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
        at = utc_to_wall(at, tz)
    return ("never",), at

