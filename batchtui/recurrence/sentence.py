"""The canonical form of a rule (what the database stores) and its sentence
(what the job shows): "Every month on the last Friday at 22:00, 12 times".
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from .rule import NTHS, WEEKDAYS, Rule

_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                  "Saturday", "Sunday")
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July",
                "August", "September", "October", "November", "December")
_MONTH_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NTH_BY_NUMBER = {n: name for name, n in NTHS.items()}


def to_dict(rule: Rule) -> dict:
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
            assert rule.weekday is not None  # nth always comes with its weekday
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


def _end_phrase(rule: Rule) -> str:
    kind = rule.end[0]
    if rule.rrule_until is not None:
        return f"until {rule.rrule_until:%Y-%m-%d} {_clock(rule.rrule_until)}"
    if kind == "never":
        return "no end date"
    if kind == "after":
        return "once" if rule.end[1] == 1 else f"{rule.end[1]} times"
    return f"until {rule.end[1].isoformat()}"


def _day_phrase(rule: Rule) -> str:
    """'on day 15', 'on the last Friday of March', 'on the last day of April'..."""
    of_month = ""
    if rule.pattern == "years":
        assert rule.month is not None  # parse fills in a years rule's month
        of_month = f" of {_MONTH_NAMES[rule.month - 1]}"
    if rule.nth is not None:
        assert rule.weekday is not None  # nth always comes with its weekday
        return f"on the {_NTH_BY_NUMBER[rule.nth]} {_WEEKDAY_NAMES[rule.weekday]}{of_month}"
    assert rule.day is not None  # without nth, parse fills in the day
    if rule.month is not None:
        longest = _MONTH_MAX_DAYS[rule.month - 1]
        if rule.day > longest or (rule.month == 2 and rule.day >= 29):
            return f"on the last day{of_month}"
        return f"on {_MONTH_NAMES[rule.month - 1]} {rule.day}"
    if rule.day == 31:
        return "on the last day"
    if rule.day > 28:
        return f"on day {rule.day} (or the last day)"
    return f"on day {rule.day}"


def sentence(rule: Rule) -> str:
    if rule.rrule is not None:
        shown = ";".join(p for p in rule.rrule.split(";") if not p.startswith("UNTIL="))
        text = f"By rule {shown}, {_end_phrase(rule)}"
        return text if len(text) <= 200 else text[:199] + "…"
    assert rule.pattern is not None  # every rule without rrule text has its pattern
    unit = rule.pattern[:-1]
    head = f"Every {unit}" if rule.every == 1 else f"Every {rule.every} {rule.pattern}"
    if rule.elapsed:
        return f"{head}, {_end_phrase(rule)}"
    if rule.pattern == "weeks":
        head += " on " + ", ".join(_WEEKDAY_NAMES[d] for d in rule.weekdays)
    elif rule.pattern in ("months", "years"):
        head += " " + _day_phrase(rule)
    return f"{head} at {_clock(rule.start)}, {_end_phrase(rule)}"

