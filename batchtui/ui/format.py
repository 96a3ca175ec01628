"""How the console shows times, statuses and other values."""

from __future__ import annotations

from datetime import UTC, datetime

from ..errors import UserError
from ..timeutil import zone
from ..vocabulary import BatchStatus, ConditionStatus, Priority

TIME = "%Y-%m-%d %H:%M:%S"
SHORT = "%Y-%m-%d %H:%M"

# Status colours are the theme's text colours ($text-error, $text-success...: meant to be read on
# the theme's background): grids resolve them against the theme in use (PagedGrid).
STATUS_STYLE = {
    BatchStatus.ERROR: "bold $text-error",
    BatchStatus.FINISHED: "$text-success",
    BatchStatus.EXECUTING: "bold $text-warning",
    BatchStatus.CANCELLING: "$text-warning",
    BatchStatus.CANCELED: "$text-secondary",
    BatchStatus.NOT_RUN: "dim",
    BatchStatus.WAITING: "$text-primary",
    BatchStatus.READY: "$text-primary",
}
PROGRESS_STYLE = "$text-warning"


def status_label(value) -> str:
    try:
        return BatchStatus(value).label
    except (ValueError, TypeError):
        return str(value)


def status_style(value) -> str:
    try:
        return STATUS_STYLE.get(BatchStatus(value), "")
    except (ValueError, TypeError):
        return ""


def priority_label(value) -> str:
    try:
        return Priority(value).label
    except (ValueError, TypeError):
        return str(value)


def condition_label(value) -> str:
    try:
        return ConditionStatus(value).label
    except (ValueError, TypeError):
        return str(value)


def as_datetime(value) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def wall(value, tz_name: str | None = None, fmt: str = SHORT) -> str:
    """A stored (naive UTC) or aware time as wall-clock text in tz_name."""
    dt = as_datetime(value)
    if dt is None:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if tz_name:
        try:
            dt = dt.astimezone(zone(tz_name))
        except (UserError, OverflowError, ValueError):
            pass  # an unknown zone, or a time it cannot hold: shown in UTC
    return dt.strftime(fmt)


def zoned(value, tz_name: str | None = None, fmt: str = SHORT) -> str:
    """``wall`` with the zone's abbreviation after it ("2026-03-02 08:00 CST"): for grids and
    lines where times of different zones (each job's own, the machine's) stand together."""
    text = wall(value, tz_name, fmt + " %Z")
    return text.rstrip()


def duration(start, end) -> str:
    a, b = as_datetime(start), as_datetime(end)
    if a is None or b is None:
        return ""
    if (a.tzinfo is None) != (b.tzinfo is None):
        a = a.replace(tzinfo=None)
        b = b.replace(tzinfo=None)
    seconds = max(0.0, (b - a).total_seconds())
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}"


def yes_no(value) -> str:
    return "Yes" if value else "No"
