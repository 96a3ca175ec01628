"""The field checks of ``batchtui.validators`` as ``textual.validation`` validators.

The forms and dialogs put them on their Inputs: a value refused is marked as
the operator types (and said on the form's message line), and the same
validator refuses it again on Ctrl+S / OK (``refusal``), so a field has one
rule whether it comes from a job file, the command line or a form. The
failure names the field as the form names it ("Maximum retries: ...").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.validation import ValidationResult, Validator
from textual.widgets import Input

from .. import validators
from ..validators import Invalid


class FieldValidator(Validator):
    """One check of ``batchtui.validators`` on the text of an Input named field."""

    def __init__(self, field: str, check: Callable[[str], Any]) -> None:
        super().__init__()
        self.field = field
        self.check = check

    def validate(self, value: str) -> ValidationResult:
        try:
            self.check(value)
        except Invalid as exc:
            return self.failure(f"{self.field}: {exc.reason}", value)
        return self.success()


class Description(FieldValidator):
    """A job's or a task's description: one line, 1 to 200 characters."""

    def __init__(self, field: str = "Description") -> None:
        super().__init__(field, validators.description)


class WholeNumber(FieldValidator):
    def __init__(self, field: str, *, minimum: int | None = None, maximum: int | None = None) -> None:
        super().__init__(field, lambda text: validators.whole_number(text, minimum=minimum, maximum=maximum))


class MaxRetries(FieldValidator):
    def __init__(self, field: str = "Maximum retries") -> None:
        super().__init__(field, validators.max_retries_text)


class Seconds(FieldValidator):
    """A duration in seconds (Time limit, Late after); blank for none."""

    def __init__(self, field: str) -> None:
        super().__init__(field, validators.seconds_text)


class WallTime(FieldValidator):
    """A date and time as the forms show them: YYYY-MM-DD HH:MM."""

    def __init__(self, field: str = "Scheduled start") -> None:
        super().__init__(field, validators.wall_time_text)


class DateText(FieldValidator):
    def __init__(self, field: str) -> None:
        super().__init__(field, validators.date_text)


class TimeText(FieldValidator):
    def __init__(self, field: str) -> None:
        super().__init__(field, validators.time_text)


class TimeZone(FieldValidator):
    def __init__(self, field: str = "Time zone") -> None:
        super().__init__(field, validators.time_zone)


class ParamValue(FieldValidator):
    """A class parameter typed in the Parameters tab (its type; the class checks the rest)."""

    def __init__(self, name: str, ptype: str) -> None:
        super().__init__(f"Parameter {name}", lambda text: validators.param_text(text, ptype))


def failure(field: Input) -> str | None:
    """What the first of the Input's validators that refuses its value says (an empty value is
    checked too); None when all accept it."""
    for validator in field.validators:
        result = validator.validate(field.value)
        if not result.is_valid:
            return result.failure_descriptions[0]
    return None


def refusal(*inputs: Input) -> str | None:
    """Before a save: the failure of the first of inputs whose value is refused, that Input
    marked invalid and focused; None when all are accepted."""
    for field in inputs:
        text = failure(field)
        if text is not None:
            field.set_class(True, "-invalid")
            field.focus()
            return text
    return None


def live_failure(event: Input.Changed) -> str | None:
    """The failure of the Input that changed, as its validators say it (None: accepted,
    or no validators on it)."""
    result = event.validation_result
    if result is None or result.is_valid:
        return None
    return result.failure_descriptions[0]
