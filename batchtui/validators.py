"""Field checks shared by the job file and the console's forms.

One rule, one place: a description is one line of at most 200 characters
whether it comes from a job file, the command line or the Batch jobs form; a
task retries 0 to 5 times whichever way it is saved. Each check takes the
value, returns it normalized, or raises ``Invalid`` with the reason alone
("9 is out of range: 0 to 5 retries"). The caller puts the field's name in
front, as its reader knows it: ``jobfile`` says "job 'X', task 'y', field
max_retries: ...", a form says "Maximum retries: ...".

Nothing here imports Textual (``batchtui.ui.validation`` wraps these checks
as ``textual.validation`` validators) or touches the database.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, date, datetime, time
from typing import Any

from .errors import UserError
from .text import visible
from .timeutil import to_utc, zone
from .vocabulary import BatchStatus, ConditionStatus, ConditionType, Priority

MAX_DESCRIPTION = 200
MAX_KEY = 200
MAX_USER = 80
MAX_GROUP = 40
MAX_COMPANY = 8
MAX_RETRIES = 5
#: The longest time limit or late-after a job may set: a year, in seconds.
MAX_SECONDS = 366 * 24 * 3600
FILE_STATUSES = ("withhold", "waiting")


class Invalid(UserError):
    """A value refused by a check. ``reason`` says why; ``field``, when given, names the
    field as the caller's reader knows it and leads the message."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)

    def named(self, field: str) -> Invalid:
        """The same refusal, naming the field."""
        return Invalid(self.reason, field)


# -- how values are shown in messages ---------------------------------------------


def q(text: Any, limit: int = 60) -> str:
    """A value quoted for a one-line message; control characters made visible."""
    if not isinstance(text, str):
        text = json.dumps(text) if _jsonable(text) else repr(text)
        return text if len(text) <= limit else text[: limit - 1] + "…"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = visible(text)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "'" + text.replace("'", "\\'") + "'"


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def shown(value: Any) -> str:
    """A value as a job file writes it, for messages: true, 3, the text 'x', a list."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return f"the text {q(value)}"
    return kind(value)


def kind(value: Any) -> str:
    """The JSON type of a value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# -- text -------------------------------------------------------------------------


def one_line(value: str) -> bool:
    return not any(unicodedata.category(ch) == "Cc" for ch in value)


def text(value: Any, *, limit: int, what: str = "text", allow_empty: bool = False) -> str:
    """One line of text of at most `limit` characters; empty only if allowed."""
    if not isinstance(value, str):
        if value is None and not allow_empty:
            raise Invalid(f"{what} is required")
        raise Invalid(f"expected text, got {kind(value)}")
    if not allow_empty and not value.strip():
        raise Invalid(f"{what} must not be empty")
    if len(value) > limit:
        raise Invalid(f"{len(value)} characters is too long (at most {limit})")
    if not one_line(value):
        raise Invalid("must be one line of text without control characters")
    return value


def description(value: Any) -> str:
    """A job's or a task's description (the forms' Job description, Description)."""
    return text(value, limit=MAX_DESCRIPTION, what="a description")


def key(value: Any) -> str:
    return text(value, limit=MAX_KEY, what="a key")


def user_name(value: Any) -> str:
    return text(value, limit=MAX_USER, what="a user name")


def company_id(value: Any) -> str:
    return text(value, limit=MAX_COMPANY, what="a company")


def group_name(value: Any) -> str:
    """A batch group's name; the empty name is the Empty batch group."""
    return text(value, limit=MAX_GROUP, allow_empty=True)


# -- flags, numbers and choices ------------------------------------------------------


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {shown(value)}")
    return value


def whole_number(value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number typed in a form (text of digits) or given as one, within its range."""
    if minimum is not None and maximum is not None:
        wanted = f"a whole number from {minimum} to {maximum}"
    elif minimum is not None:
        wanted = f"a whole number of {minimum} or more"
    else:
        wanted = "a whole number"
    if isinstance(value, str):
        raw = value.strip()
        body = raw[1:] if raw[:1] == "-" else raw
        if not body.isdigit():
            raise Invalid(f"enter {wanted}, not {q(value)}")
        number = int(raw)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise Invalid(f"expected {wanted}, got {shown(value)}")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise Invalid(f"enter {wanted}, not {number}")
    return number


def max_retries(value: Any) -> int:
    """How many times a failed task is tried again: 0 to MAX_RETRIES (a whole number, never text)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected a whole number from 0 to {MAX_RETRIES}, got {shown(value)}")
    if not 0 <= value <= MAX_RETRIES:
        raise Invalid(f"{value} is out of range: 0 to {MAX_RETRIES} retries")
    return value


def max_retries_text(value: str) -> int:
    """Maximum retries as typed in the task form."""
    return max_retries(whole_number(value, minimum=0, maximum=MAX_RETRIES))


def seconds(value: Any) -> float:
    """A duration in seconds (a task's time limit, a job's late-after): a number more than 0,
    at most MAX_SECONDS; a whole number stays one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"expected a number of seconds more than 0, got {shown(value)}")
    if value != value or not 0 < value <= MAX_SECONDS:
        raise Invalid(f"{shown(value)} is out of range: more than 0 and at most {MAX_SECONDS} seconds (a year)")
    return value


def seconds_text(value: str) -> float | None:
    """Seconds as typed in a form: blank for none."""
    raw = value.strip()
    if not raw:
        return None
    try:
        number: float = int(raw) if raw.lstrip("-").isdigit() else float(raw)
    except ValueError:
        raise Invalid(f"enter a number of seconds, or leave it blank for none, not {q(value)}") from None
    return seconds(number)


def seconds_shown(value: float | None) -> str:
    """Seconds as a form and a message show them: 90, 2.5, or "" for none."""
    if value is None:
        return ""
    return f"{value:g}" if value != int(value) else str(int(value))


def choice(value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        what = q(value) if isinstance(value, str) else shown(value)
        raise Invalid(f"{what} is not one of {', '.join(allowed)}")
    return value


def priority(value: Any) -> Priority:
    if isinstance(value, Priority):
        return value
    return Priority.from_cli(choice(value, tuple(p.cli for p in Priority)))


def file_status(value: Any) -> BatchStatus:
    """The status a new job is given: Withhold or Waiting."""
    if isinstance(value, str) and value in {s.cli for s in BatchStatus} and value not in FILE_STATUSES:
        raise Invalid(f"{q(value)} cannot be given in a job file: a new job is withhold or waiting")
    return BatchStatus.from_cli(choice(value, FILE_STATUSES))


def condition_type(value: Any) -> ConditionType:
    if isinstance(value, ConditionType):
        return value
    return ConditionType.ALL if choice(value, ("all", "any")) == "all" else ConditionType.ANY


def condition_status(value: Any) -> ConditionStatus:
    if isinstance(value, ConditionStatus):
        return value
    return ConditionStatus.from_cli(choice(value, tuple(c.cli for c in ConditionStatus)))


# -- time zones, dates and times -------------------------------------------------------


def time_zone(value: Any) -> str:
    """An IANA time zone name."""
    if not isinstance(value, str):
        raise Invalid(f"expected an IANA time zone name (e.g. America/Chicago), got {kind(value)}")
    try:
        zone(value)
    except UserError:
        raise Invalid(f"unknown time zone {q(value)} (use an IANA name such as America/Chicago)") from None
    return value


def date_time(value: Any, tz: str) -> datetime:
    """ISO 8601 text (offset optional, else read in time zone tz; a space may stand for the T),
    or a datetime, as naive UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected an ISO 8601 date/time such as 2026-12-01T22:00:00, got {kind(value)}")
    raw = value.strip()
    if raw[-1] in "Zz":
        raw = raw[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise Invalid(f"{q(value)} is not an ISO 8601 date/time (e.g. 2026-12-01T22:00:00)") from None
    try:
        return to_utc(parsed, zone(tz))
    except (OverflowError, ValueError):
        raise Invalid(f"{q(value)} is out of range") from None


def wall_time_text(value: str) -> datetime:
    """A date and time as a form shows it (YYYY-MM-DD HH:MM, wall time): the naive datetime.

    The same ISO 8601 reading as ``date_time`` (which the service applies when
    it saves, in the job's time zone); here the form's own wording."""
    raw = value.strip()
    if not raw:
        raise Invalid("enter a date and time (YYYY-MM-DD HH:MM)")
    try:
        parsed = datetime.fromisoformat(raw.replace(" ", "T", 1))
    except ValueError:
        raise Invalid(f"{q(value)} is not a date and time (YYYY-MM-DD HH:MM)") from None
    return parsed.replace(tzinfo=None) if parsed.tzinfo is None else parsed


def date_text(value: str) -> date:
    """A date as a form takes it: YYYY-MM-DD."""
    raw = value.strip()
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise Invalid(f"{q(value)} is not a date (YYYY-MM-DD)") from None


def time_text(value: str) -> time:
    """A time of day as a form takes it: HH:MM (HH:MM:SS too)."""
    raw = value.strip()
    try:
        return time.fromisoformat(raw)
    except ValueError:
        raise Invalid(f"{q(value)} is not a time of day (HH:MM)") from None


# -- a task's parameters as typed -------------------------------------------------------


def param_text(value: str, ptype: str) -> Any:
    """A class parameter typed in the Parameters tab, as the value the class checks
    (``classes.validate_params`` then applies the class's own rules)."""
    raw = value.strip()
    if ptype == "integer":
        try:
            return int(raw)
        except ValueError:
            raise Invalid(f"{q(raw)} is not a whole number") from None
    if ptype == "number":
        try:
            return int(raw) if raw.lstrip("-").isdigit() else float(raw)
        except ValueError:
            raise Invalid(f"{q(raw)} is not a number") from None
    if ptype == "text_or_list" and raw.startswith("["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise Invalid(f"not a JSON list of texts ({exc.msg})") from None
    return raw


# -- the Alerts dialog ------------------------------------------------------------------


def alert_choice(*, ended: bool, error: bool, canceled: bool, popup: bool, email: bool,
                 notify: bool = False, late: bool = False) -> str | None:
    """Alerts that say how but not when are refused; the reverse is allowed (the Action
    center lists them) and returns a hint."""
    when = ended or error or canceled or late
    if (popup or email or notify) and not when:
        raise Invalid("Choose when to be alerted: Ended, Has an error, Is canceled or Is late.")
    if when and not (popup or email or notify):
        return ("Choose how to be alerted: Show pop-up, Send e-mail and/or Send to chat (alerts also go to "
                "the Action center).")
    return None
