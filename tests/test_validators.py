"""The field checks the job file and the console's forms share (batchtui.validators)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest

from batchtui import jobfile, validators
from batchtui.validators import Invalid


def test_validators_import_nothing_of_textual():
    code = "import sys, batchtui.validators, batchtui.jobfile; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("value, reason", [
    ("", "a description must not be empty"),
    ("   ", "a description must not be empty"),
    (None, "a description is required"),
    (3, "expected text, got a whole number"),
    ("x" * 201, "201 characters is too long (at most 200)"),
    ("two\nlines", "must be one line of text without control characters"),
])
def test_description_refused_with_the_same_reason_in_both_places(value, reason):
    with pytest.raises(Invalid) as form:
        validators.description(value)
    assert form.value.reason == reason
    assert str(form.value.named("Job description")) == f"Job description: {reason}"
    with pytest.raises(jobfile.FieldError) as file:
        jobfile.check_description(value, job="'J'")
    assert str(file.value) == f"job 'J', field description: {reason}"


def test_max_retries_from_a_file_and_from_the_form():
    assert validators.max_retries(5) == 5
    assert validators.max_retries_text(" 3 ") == 3
    for value in (6, -1, True, "3", 2.0):
        with pytest.raises(Invalid):
            validators.max_retries(value)
    with pytest.raises(Invalid, match="9 is out of range|from 0 to 5"):
        validators.max_retries_text("9")
    with pytest.raises(Invalid, match="from 0 to 5"):
        validators.max_retries_text("x")
    with pytest.raises(jobfile.FieldError, match="field max_retries: 6 is out of range: 0 to 5 retries"):
        jobfile.check_max_retries(6, job="'J'", task="'t'")


def test_whole_numbers_typed_in_a_form():
    assert validators.whole_number("12", minimum=1) == 12
    with pytest.raises(Invalid, match="a whole number of 1 or more, not 0"):
        validators.whole_number("0", minimum=1)
    with pytest.raises(Invalid, match="a whole number from 1 to 31, not 32"):
        validators.whole_number("32", minimum=1, maximum=31)
    with pytest.raises(Invalid, match="not 'abc'"):
        validators.whole_number("abc", minimum=0)


def test_dates_times_and_zones():
    assert validators.wall_time_text("2026-12-01 22:00") == datetime(2026, 12, 1, 22, 0)
    with pytest.raises(Invalid, match="enter a date and time"):
        validators.wall_time_text(" ")
    with pytest.raises(Invalid, match="is not a date and time"):
        validators.wall_time_text("2026-13-45 99:00")
    assert validators.date_time("2026-12-01T22:00:00", "America/Chicago") == datetime(2026, 12, 2, 4, 0)
    assert validators.date_time("2026-12-01 22:00", "UTC") == datetime(2026, 12, 1, 22, 0)
    with pytest.raises(Invalid, match="not an ISO 8601"):
        validators.date_time("someday", "UTC")
    assert str(validators.date_text("2026-03-02")) == "2026-03-02"
    with pytest.raises(Invalid, match="not a date"):
        validators.date_text("2026-02-30")
    with pytest.raises(Invalid, match="not a time of day"):
        validators.time_text("25:00")
    assert validators.time_zone("Europe/Berlin") == "Europe/Berlin"
    with pytest.raises(Invalid, match="unknown time zone 'Nowhere/City'"):
        validators.time_zone("Nowhere/City")


def test_choices_and_parameters_and_alerts():
    assert validators.priority("high").cli == "high"
    with pytest.raises(Invalid, match="'urgent' is not one of"):
        validators.priority("urgent")
    assert validators.param_text(" 5 ", "integer") == 5
    assert validators.param_text("1.5", "number") == 1.5
    assert validators.param_text('["a", "b"]', "text_or_list") == ["a", "b"]
    with pytest.raises(Invalid, match="not a whole number"):
        validators.param_text("abc", "integer")
    with pytest.raises(Invalid, match="Choose when"):
        validators.alert_choice(ended=False, error=False, canceled=False, popup=True, email=False)
    assert "Choose how" in validators.alert_choice(ended=True, error=False, canceled=False, popup=False,
                                                   email=False)
    assert validators.alert_choice(ended=True, error=False, canceled=False, popup=True, email=False) is None
