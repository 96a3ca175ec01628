"""The validated rule: what a recurrence is, once read.

Every other module of the package reads a ``Rule``, never the JSON object:
``parse`` makes one, ``sentence`` says it, ``occurrence`` computes its times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..errors import UserError

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
# fact within 100 to 500 years, see occurrence.rrule_has_occurrence) is refused as
# having none.
RRULE_HORIZON_YEARS = 100


class RecurrenceError(UserError):
    """A recurrence object that cannot be used; ``field`` names the culprit.

    ``field`` is a path in the job file, e.g. ``recurrence.every`` or
    ``recurrence.end.after``; the message starts with it and says why.
    """

    def __init__(self, field: str, why: str):
        self.field = field
        self.why = why
        super().__init__(f"{field}: {why}")


@dataclass(frozen=True)
class Rule:
    """A validated recurrence; the single source for every function of the package."""

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
