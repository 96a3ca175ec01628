"""Recurrence: validation, the sentence, occurrences, DST, and properties.

Occurrences are aware datetimes in the job's zone. Python compares two aware
datetimes that share a tzinfo by wall time (ignoring fold), so these tests
compare them in UTC.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batchtui.errors import UserError
from batchtui.recurrence import (
    RecurrenceError,
    describe,
    next_occurrence,
    normalize,
    occurrences,
    warning,
)

CHI = "America/Chicago"   # 2026: spring forward 03-08 02:00, fall back 11-01 02:00
PAR = "Europe/Paris"      # 2026: spring forward 03-29 02:00, fall back 10-25 03:00
ANY_START = datetime(2026, 1, 1)  # default_start when the spec has its own start


def norm(spec: dict, tz: str = CHI, default_start: datetime = ANY_START) -> dict:
    return normalize(spec, default_start=default_start, time_zone=tz)


def utc(values):
    return [v.astimezone(UTC).replace(tzinfo=None) for v in values]


def walls(values):
    return [v.replace(tzinfo=None).isoformat(timespec="minutes") for v in values]


def occ(spec: dict, tz: str = CHI, count: int = 6, after=None):
    return occurrences(norm(spec, tz), tz, count=count, after=after)


# ---------------------------------------------------------------------------
# normalize: the canonical form
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec, expected", [
    ({"pattern": "minutes", "every": 10},
     {"pattern": "minutes", "every": 10}),
    ({"pattern": "hours"},
     {"pattern": "hours", "every": 1}),
    ({"pattern": "days", "every": 2},
     {"pattern": "days", "every": 2}),
    ({"pattern": "weeks"},  # default: the start's weekday (a Tuesday)
     {"pattern": "weeks", "every": 1, "weekdays": ["tue"]}),
    ({"pattern": "weeks", "weekdays": ["FRI", "mon", "mon"]},
     {"pattern": "weeks", "every": 1, "weekdays": ["mon", "fri"]}),
    ({"pattern": "months"},  # default: the start's day
     {"pattern": "months", "every": 1, "day": 1}),
    ({"pattern": "months", "every": 3, "nth": "Last", "weekday": "fri"},
     {"pattern": "months", "every": 3, "nth": "last", "weekday": "fri"}),
    ({"pattern": "years"},  # default: the start's month and day
     {"pattern": "years", "every": 1, "month": 12, "day": 1}),
    ({"pattern": "years", "month": 3, "nth": "second", "weekday": "tue"},
     {"pattern": "years", "every": 1, "month": 3, "nth": "second", "weekday": "tue"}),
])
def test_normalize_fills_defaults(spec, expected):
    # The job file's example: scheduled 2026-12-01T22:00 in Chicago = 04:00 UTC.
    result = normalize(spec, default_start=datetime(2026, 12, 2, 4, 0), time_zone=CHI)
    assert result == {**expected, "start": "2026-12-01T22:00:00", "end": {"never": True}}
    assert json.loads(json.dumps(result)) == result
    assert norm(result) == result  # idempotent


def test_start_with_offset_is_converted_to_the_zone():
    spec = {"pattern": "days", "start": "2026-12-02T04:00:00Z"}
    assert norm(spec)["start"] == "2026-12-01T22:00:00"
    spec = {"pattern": "days", "start": "2026-07-01T12:00:00+02:00"}
    assert norm(spec)["start"] == "2026-07-01T05:00:00"
    # Microseconds are dropped (dateutil drops them from DTSTART as well).
    spec = {"pattern": "days", "start": "2026-07-01T12:00:00.750"}
    assert norm(spec)["start"] == "2026-07-01T12:00:00"


def test_utcnow_is_naive_utc_to_the_microsecond():
    from batchtui.timeutil import utcnow

    for _ in range(1000):
        before = datetime.now(UTC).replace(tzinfo=None)
        now = utcnow()
        after = datetime.now(UTC).replace(tzinfo=None)
        assert now.tzinfo is None and before <= now <= after


def test_default_start_is_naive_utc():
    result = normalize({"pattern": "hours"}, default_start=datetime(2026, 7, 1, 12, 0),
                       time_zone=PAR)
    assert result["start"] == "2026-07-01T14:00:00"


def test_null_means_default_and_default_start_may_be_text():
    spec = {"pattern": "years", "every": None, "month": None, "day": None, "end": None,
            "start": "2026-06-01T08:00:00"}
    assert norm(spec) == {"pattern": "years", "every": 1, "month": 6, "day": 1,
                          "start": "2026-06-01T08:00:00", "end": {"never": True}}
    # The Recurrence dialog passes its start field as text: a wall time.
    assert normalize({"pattern": "days"}, default_start="2026-06-01T08:00:00",
                     time_zone=CHI)["start"] == "2026-06-01T08:00:00"


def test_module_needs_neither_textual_nor_peewee():
    code = ("import sys, batchtui.recurrence; "
            "sys.exit(any(m.split('.')[0] in ('textual', 'peewee') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_end_forms():
    base = {"pattern": "days", "start": "2026-01-01T08:00:00"}
    assert norm({**base, "end": {"never": True}})["end"] == {"never": True}
    assert norm({**base, "end": {"after": 3}})["end"] == {"after": 3}
    assert norm({**base, "end": {"by": "2026-02-01"}})["end"] == {"by": "2026-02-01"}


def test_export_text_and_preview_time_zone_are_tolerated():
    spec = {"pattern": "days", "start": "2026-01-01T08:00:00", "text": "Every day",
            "time_zone": CHI}
    assert "text" not in norm(spec) and "time_zone" not in norm(spec)
    with pytest.raises(RecurrenceError) as err:
        norm({**spec, "time_zone": PAR})
    assert err.value.field == "recurrence.time_zone"


# ---------------------------------------------------------------------------
# Every pattern
# ---------------------------------------------------------------------------


def test_minutes():
    got = occ({"pattern": "minutes", "every": 10, "start": "2026-06-01T09:05:00"}, count=3)
    assert walls(got) == ["2026-06-01T09:05", "2026-06-01T09:15", "2026-06-01T09:25"]


def test_hours():
    got = occ({"pattern": "hours", "every": 5, "start": "2026-06-01T22:00:00"}, count=3)
    assert walls(got) == ["2026-06-01T22:00", "2026-06-02T03:00", "2026-06-02T08:00"]


def test_days():
    got = occ({"pattern": "days", "every": 3, "start": "2026-06-30T22:00:00"}, count=3)
    assert walls(got) == ["2026-06-30T22:00", "2026-07-03T22:00", "2026-07-06T22:00"]


def test_weeks_on_several_days_every_two_weeks():
    # 2026-06-03 is a Wednesday: Monday of that week is before the start.
    spec = {"pattern": "weeks", "every": 2, "weekdays": ["mon", "wed"],
            "start": "2026-06-03T07:00:00"}
    assert walls(occ(spec, count=5)) == [
        "2026-06-03T07:00", "2026-06-15T07:00", "2026-06-17T07:00",
        "2026-06-29T07:00", "2026-07-01T07:00"]


def test_months_on_a_day():
    spec = {"pattern": "months", "every": 2, "day": 15, "start": "2026-01-20T06:00:00"}
    assert walls(occ(spec, count=3)) == [
        "2026-03-15T06:00", "2026-05-15T06:00", "2026-07-15T06:00"]


def test_months_on_the_last_friday_the_contract_example():
    # "a monthly 'last Friday' starting on the 1st first runs on the last Friday"
    spec = {"pattern": "months", "every": 1, "nth": "last", "weekday": "fri",
            "end": {"after": 12}}
    result = normalize(spec, default_start=datetime(2026, 12, 2, 4, 0), time_zone=CHI)
    got = occurrences(result, CHI, count=20)
    assert len(got) == 12
    assert walls(got)[:3] == ["2026-12-25T22:00", "2027-01-29T22:00", "2027-02-26T22:00"]
    assert all(d.weekday() == 4 and (d + timedelta(days=7)).month != d.month for d in got)


@pytest.mark.parametrize("nth, expected", [
    ("first", "2026-07-06"), ("second", "2026-07-13"), ("third", "2026-07-20"),
    ("fourth", "2026-07-27"), ("last", "2026-07-27")])
def test_months_nth_weekday(nth, expected):
    spec = {"pattern": "months", "nth": nth, "weekday": "mon", "start": "2026-07-01T00:00:00"}
    assert walls(occ(spec, count=1)) == [expected + "T00:00"]


def test_years_on_a_day_and_on_an_nth_weekday():
    spec = {"pattern": "years", "month": 3, "day": 15, "start": "2026-06-01T12:00:00"}
    assert walls(occ(spec, count=2)) == ["2027-03-15T12:00", "2028-03-15T12:00"]
    spec = {"pattern": "years", "every": 2, "month": 11, "nth": "fourth",
            "weekday": "thu", "start": "2026-01-01T09:00:00"}
    assert walls(occ(spec, count=2)) == ["2026-11-26T09:00", "2028-11-23T09:00"]


def test_rrule():
    spec = {"rrule": "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            "start": "2026-01-01T18:00:00"}
    assert walls(occ(spec, count=3)) == [
        "2026-01-30T18:00", "2026-02-27T18:00", "2026-03-31T18:00"]
    assert norm({"rrule": "rrule:freq=weekly;byday=mo", "start": "2026-01-01T00:00:00"})[
        "rrule"] == "FREQ=WEEKLY;BYDAY=MO"


def test_rrule_count_and_until_move_to_end():
    start = "2026-01-01T08:00:00"
    assert norm({"rrule": "FREQ=DAILY;COUNT=3", "start": start}) == {
        "rrule": "FREQ=DAILY", "start": start, "end": {"after": 3}}
    assert norm({"rrule": "FREQ=DAILY;UNTIL=20260105", "start": start}) == {
        "rrule": "FREQ=DAILY", "start": start, "end": {"by": "2026-01-05"}}
    # UNTIL in UTC becomes a wall time in the zone (Chicago is UTC-6 in January).
    spec = norm({"rrule": "FREQ=DAILY;UNTIL=20260105T150000Z", "start": start})
    assert spec["rrule"] == "FREQ=DAILY;UNTIL=20260105T090000"
    assert len(occurrences(spec, CHI, count=10)) == 5
    assert describe(spec) == "By rule FREQ=DAILY, until 2026-01-05 09:00"


def test_rrule_follows_the_wall_clock_and_runs_once_per_instant():
    # Wall-clock rules (RFC 5545): 02:00-02:59 do not exist on 2026-03-08 in
    # Chicago; all four quarter hours land on 03:00 and run once.
    spec = {"rrule": "FREQ=MINUTELY;INTERVAL=15", "start": "2026-03-08T01:30:00"}
    assert walls(occ(spec, count=5)) == [
        "2026-03-08T01:30", "2026-03-08T01:45", "2026-03-08T03:00",
        "2026-03-08T03:15", "2026-03-08T03:30"]


# ---------------------------------------------------------------------------
# The start, the end
# ---------------------------------------------------------------------------


def test_start_is_an_occurrence_only_if_it_fits():
    fits = {"pattern": "weeks", "weekdays": ["tue"], "start": "2026-06-02T10:00:00"}
    assert walls(occ(fits, count=1)) == ["2026-06-02T10:00"]
    misfit = {**fits, "weekdays": ["mon"]}
    assert walls(occ(misfit, count=1)) == ["2026-06-08T10:00"]
    months = {"pattern": "months", "day": 10, "start": "2026-06-11T10:00:00"}
    assert walls(occ(months, count=1)) == ["2026-07-10T10:00"]


def test_end_after_counts_from_the_start():
    spec = {"pattern": "weeks", "weekdays": ["mon", "fri"], "start": "2026-06-03T10:00:00",
            "end": {"after": 3}}
    got = occ(spec, count=10)
    assert walls(got) == ["2026-06-05T10:00", "2026-06-08T10:00", "2026-06-12T10:00"]
    last = got[-1]
    assert next_occurrence(norm(spec), CHI, last) is None
    assert next_occurrence(norm(spec), CHI, last - timedelta(seconds=1)) == utc([last])[0]


def test_end_by_is_inclusive():
    spec = {"pattern": "days", "start": "2026-06-01T22:00:00", "end": {"by": "2026-06-03"}}
    assert walls(occ(spec, count=10)) == [
        "2026-06-01T22:00", "2026-06-02T22:00", "2026-06-03T22:00"]
    spec = {"pattern": "minutes", "every": 20, "start": "2026-06-03T22:50:00",
            "end": {"by": "2026-06-03"}}
    assert walls(occ(spec, count=10)) == [
        "2026-06-03T22:50", "2026-06-03T23:10", "2026-06-03T23:30", "2026-06-03T23:50"]


def test_end_by_on_the_start_day_keeps_the_start():
    spec = {"pattern": "months", "day": 31, "start": "2026-01-31T23:59:59",
            "end": {"by": "2026-01-31"}}
    assert walls(occ(spec)) == ["2026-01-31T23:59"]


def test_next_occurrence_is_naive_utc_and_accepts_aware_or_naive():
    spec = norm({"pattern": "days", "start": "2026-06-01T22:00:00"})
    naive = next_occurrence(spec, CHI, datetime(2026, 6, 2, 4, 0))  # = the first, 22:00 CDT
    assert naive == datetime(2026, 6, 3, 3, 0) and naive.tzinfo is None
    aware = next_occurrence(spec, CHI, datetime(2026, 6, 1, 23, 0, tzinfo=ZoneInfo(CHI)))
    assert aware == datetime(2026, 6, 3, 3, 0)
    assert next_occurrence(spec, CHI, datetime(2020, 1, 1)) == datetime(2026, 6, 2, 3, 0)


# ---------------------------------------------------------------------------
# Month end
# ---------------------------------------------------------------------------


def test_day_31_is_month_end_every_month():
    spec = {"pattern": "months", "day": 31, "start": "2027-01-01T20:00:00"}
    assert [d.date().isoformat() for d in occ(spec, count=5)] == [
        "2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]


def test_day_30_and_29_in_february():
    spec = {"pattern": "months", "day": 30, "start": "2027-01-01T20:00:00"}
    assert [d.day for d in occ(spec, count=4)] == [30, 28, 30, 30]
    spec = {"pattern": "months", "day": 30, "start": "2028-01-01T20:00:00"}
    assert [d.day for d in occ(spec, count=2)] == [30, 29]
    spec = {"pattern": "months", "day": 29, "every": 12, "start": "2027-02-01T20:00:00"}
    assert [d.date().isoformat() for d in occ(spec, count=2)] == ["2027-02-28", "2028-02-29"]


def test_years_on_a_day_past_the_month_end():
    spec = {"pattern": "years", "month": 4, "day": 31, "start": "2026-01-01T00:00:00"}
    assert [d.date().isoformat() for d in occ(spec, count=1)] == ["2026-04-30"]
    spec = {"pattern": "years", "month": 2, "day": 29, "start": "2026-01-01T00:00:00"}
    assert [d.date().isoformat() for d in occ(spec, count=3)] == [
        "2026-02-28", "2027-02-28", "2028-02-29"]


# ---------------------------------------------------------------------------
# Daylight saving time
# ---------------------------------------------------------------------------

# (zone, spring-forward day, fall-back day, first hour of the repeated hour)
DST = [(CHI, "2026-03-08", "2026-11-01", 1), (PAR, "2026-03-29", "2026-10-25", 2)]


@pytest.mark.parametrize("tz, spring, fall, repeated", DST)
@pytest.mark.parametrize("every, pattern", [(1, "hours"), (30, "minutes")])
def test_elapsed_patterns_keep_their_rhythm(tz, spring, fall, repeated, every, pattern):
    step = timedelta(hours=every) if pattern == "hours" else timedelta(minutes=every)
    for day in (spring, fall):
        spec = {"pattern": pattern, "every": every, "start": f"{day}T00:00:00"}
        got = utc(occ(spec, tz, count=12))
        assert all(b - a == step for a, b in pairwise(got))
    # Fall back: the repeated hour runs twice (two different instants).
    spec = {"pattern": "hours", "start": f"{fall}T00:00:00"}
    local = occ(spec, tz, count=5)
    assert [d.hour for d in local].count(repeated) == 2
    # Spring forward: the missing hour is skipped, the rhythm is not.
    spec = {"pattern": "minutes", "every": 30, "start": f"{spring}T01:00:00"}
    assert walls(occ(spec, tz, count=4))[2:] == [f"{spring}T03:00", f"{spring}T03:30"]


@pytest.mark.parametrize("tz, spring, fall, repeated", DST)
def test_daily_time_in_the_gap_runs_at_the_end_of_the_gap(tz, spring, fall, repeated):
    the_day_before = (date.fromisoformat(spring) - timedelta(days=1)).isoformat()
    spec = {"pattern": "days", "start": f"{the_day_before}T02:30:00"}
    got = occ(spec, tz, count=3)
    assert walls(got)[1] == f"{spring}T03:00"   # not 03:30
    assert got[2].hour == 2 and got[2].minute == 30
    spring_start = datetime.fromisoformat(f"{spring}T03:00:00").replace(tzinfo=ZoneInfo(tz))
    assert utc(got)[1] == utc([spring_start])[0]  # the first instant after the gap


@pytest.mark.parametrize("tz, spring, fall, repeated", DST)
def test_daily_time_in_the_repeated_hour_runs_once_at_the_first(tz, spring, fall, repeated):
    the_day_before = (date.fromisoformat(fall) - timedelta(days=1)).isoformat()
    spec = norm({"pattern": "days", "start": f"{the_day_before}T{repeated:02d}:30:00"}, tz)
    got = occurrences(spec, tz, count=3)
    assert [d.date().isoformat() for d in got][:2] == [the_day_before, fall]
    first_of_two = got[1]
    assert first_of_two.fold == 0
    assert first_of_two.utcoffset() > got[2].utcoffset()  # still summer time
    # After the first 01:30 the next run is the next day, not the second 01:30.
    after = next_occurrence(spec, tz, first_of_two)
    assert after == utc([got[2]])[0] and after - utc([first_of_two])[0] == timedelta(hours=25)


def test_weekly_and_monthly_keep_the_wall_clock_across_dst():
    spec = {"pattern": "weeks", "weekdays": ["sun"], "start": "2026-10-18T09:00:00"}
    got = occ(spec, PAR, count=3)
    assert {d.hour for d in got} == {9}
    assert got[0].utcoffset() != got[2].utcoffset()


# ---------------------------------------------------------------------------
# The sentence and the warning
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec, sentence", [
    ({"pattern": "minutes"}, "Every minute, no end date"),
    ({"pattern": "minutes", "every": 10}, "Every 10 minutes, no end date"),
    ({"pattern": "hours", "end": {"after": 1}}, "Every hour, once"),
    ({"pattern": "hours", "every": 4, "end": {"after": 5}}, "Every 4 hours, 5 times"),
    ({"pattern": "days"}, "Every day at 22:00, no end date"),
    ({"pattern": "days", "every": 2, "end": {"by": "2027-03-31"}},
     "Every 2 days at 22:00, until 2027-03-31"),
    ({"pattern": "weeks", "every": 2, "weekdays": ["wed", "mon"], "end": {"by": "2027-03-31"}},
     "Every 2 weeks on Monday, Wednesday at 22:00, until 2027-03-31"),
    ({"pattern": "weeks"}, "Every week on Tuesday at 22:00, no end date"),
    ({"pattern": "months", "nth": "last", "weekday": "fri", "end": {"after": 12}},
     "Every month on the last Friday at 22:00, 12 times"),
    ({"pattern": "months", "every": 3, "day": 15}, "Every 3 months on day 15 at 22:00, no end date"),
    ({"pattern": "months", "day": 31}, "Every month on the last day at 22:00, no end date"),
    ({"pattern": "months", "day": 30}, "Every month on day 30 (or the last day) at 22:00, no end date"),
    ({"pattern": "years"}, "Every year on December 1 at 22:00, no end date"),
    ({"pattern": "years", "month": 2, "day": 29}, "Every year on the last day of February at 22:00, no end date"),
    ({"pattern": "years", "every": 2, "month": 3, "nth": "second", "weekday": "tue"},
     "Every 2 years on the second Tuesday of March at 22:00, no end date"),
    ({"rrule": "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4"}, "By rule FREQ=WEEKLY;BYDAY=MO,WE, 4 times"),
])
def test_describe(spec, sentence):
    result = normalize(spec, default_start=datetime(2026, 12, 2, 4, 0), time_zone=CHI)
    assert describe(result) == sentence


def test_describe_shows_seconds_only_when_there_are_some():
    assert describe(norm({"pattern": "days", "start": "2026-01-01T06:07:08"})).startswith(
        "Every day at 06:07:08")


def test_warning_for_one_minute_recurrences_only():
    start = "2026-01-01T00:00:00"
    assert "minute" in warning(norm({"pattern": "minutes", "start": start}))
    assert "minute" in warning(norm({"rrule": "FREQ=MINUTELY", "start": start}))
    assert warning(norm({"pattern": "minutes", "every": 2, "start": start})) is None
    assert warning(norm({"rrule": "FREQ=MINUTELY;BYHOUR=3", "start": start})) is None
    assert warning(norm({"pattern": "hours", "start": start})) is None


# ---------------------------------------------------------------------------
# Bad input: always a RecurrenceError naming the field
# ---------------------------------------------------------------------------

S = "2026-01-01T00:00:00"


@pytest.mark.parametrize("spec, field", [
    ("daily", "recurrence"),
    ({"start": S}, "recurrence.pattern"),
    ({"pattern": "fortnights"}, "recurrence.pattern"),
    ({"pattern": 3}, "recurrence.pattern"),
    ({"pattern": "days", "colour": "red"}, "recurrence.colour"),
    ({"pattern": "days", "weekdays": ["mon"]}, "recurrence.weekdays"),
    ({"pattern": "months", "month": 3}, "recurrence.month"),
    ({"pattern": "days", "every": 0}, "recurrence.every"),
    ({"pattern": "days", "every": -2}, "recurrence.every"),
    ({"pattern": "days", "every": True}, "recurrence.every"),
    ({"pattern": "days", "every": 1.5}, "recurrence.every"),
    ({"pattern": "days", "every": "2"}, "recurrence.every"),
    ({"pattern": "days", "every": 10**9}, "recurrence.every"),
    ({"pattern": "weeks", "weekdays": []}, "recurrence.weekdays"),
    ({"pattern": "weeks", "weekdays": "mon"}, "recurrence.weekdays"),
    ({"pattern": "weeks", "weekdays": ["mon", "funday"]}, "recurrence.weekdays"),
    ({"pattern": "weeks", "weekdays": [0]}, "recurrence.weekdays"),
    ({"pattern": "months", "day": 0}, "recurrence.day"),
    ({"pattern": "months", "day": 32}, "recurrence.day"),
    ({"pattern": "months", "day": False}, "recurrence.day"),
    ({"pattern": "months", "day": 5, "nth": "first", "weekday": "mon"}, "recurrence.day"),
    ({"pattern": "months", "nth": "fifth", "weekday": "mon"}, "recurrence.nth"),
    ({"pattern": "months", "nth": "first"}, "recurrence.weekday"),
    ({"pattern": "months", "weekday": "mon"}, "recurrence.nth"),
    ({"pattern": "months", "nth": "first", "weekday": "lundi"}, "recurrence.weekday"),
    ({"pattern": "years", "month": 13}, "recurrence.month"),
    ({"pattern": "years", "month": 0}, "recurrence.month"),
    ({"pattern": "years", "month": True}, "recurrence.month"),
    ({"pattern": "days", "start": "yesterday"}, "recurrence.start"),
    ({"pattern": "days", "start": "2026-02-30T10:00:00"}, "recurrence.start"),
    ({"pattern": "days", "start": 20260101}, "recurrence.start"),
    ({"pattern": "days", "start": "9999-12-31T23:59:59"}, "recurrence.start"),
    ({"pattern": "days", "end": "never"}, "recurrence.end"),
    ({"pattern": "days", "end": {}}, "recurrence.end"),
    ({"pattern": "days", "end": {"after": 2, "by": "2027-01-01"}}, "recurrence.end"),
    ({"pattern": "days", "end": {"until": "2027-01-01"}}, "recurrence.end.until"),
    ({"pattern": "days", "end": {"never": False}}, "recurrence.end.never"),
    ({"pattern": "days", "end": {"never": 1}}, "recurrence.end.never"),
    ({"pattern": "days", "end": {"after": 0}}, "recurrence.end.after"),
    ({"pattern": "days", "end": {"after": True}}, "recurrence.end.after"),
    ({"pattern": "days", "end": {"after": "3"}}, "recurrence.end.after"),
    ({"pattern": "days", "end": {"by": "2027-02-30"}}, "recurrence.end.by"),
    ({"pattern": "days", "end": {"by": "next year"}}, "recurrence.end.by"),
    ({"pattern": "days", "end": {"by": 2027}}, "recurrence.end.by"),
    ({"pattern": "days", "end": {"by": "2025-12-31"}}, "recurrence.end.by"),  # before start
    ({"pattern": "months", "nth": "last", "weekday": "fri", "start": "2026-01-31T00:00:00",
      "end": {"by": "2026-02-26"}}, "recurrence.end.by"),  # last Friday is the 27th
    ({"pattern": "days", "rrule": "FREQ=DAILY"}, "recurrence.rrule"),
    ({"rrule": "FREQ=DAILY", "every": 2}, "recurrence.every"),
    ({"rrule": ""}, "recurrence.rrule"),
    ({"rrule": 5}, "recurrence.rrule"),
    ({"rrule": "FREQ=FORTNIGHTLY"}, "recurrence.rrule"),
    ({"rrule": "FREQ=SECONDLY"}, "recurrence.rrule"),
    ({"rrule": "BYDAY=MO"}, "recurrence.rrule"),
    ({"rrule": "FREQ=WEEKLY;BYDAY=XX"}, "recurrence.rrule"),
    ({"rrule": "FREQ=WEEKLY;BYDAY=1MO"}, "recurrence.rrule"),
    ({"rrule": "FREQ=DAILY;BYHOUR=24"}, "recurrence.rrule"),
    ({"rrule": "FREQ=DAILY;INTERVAL=0"}, "recurrence.rrule"),
    ({"rrule": "FREQ=DAILY;FREQ=WEEKLY"}, "recurrence.rrule"),
    ({"rrule": "FREQ=DAILY;BYEASTER=0"}, "recurrence.rrule"),
    ({"rrule": "FREQ=DAILY;COUNT=2;UNTIL=20270101"}, "recurrence.rrule"),
    ({"rrule": "FREQ=DAILY;UNTIL=2027"}, "recurrence.rrule"),
    ({"rrule": "FREQ=DAILY;nonsense"}, "recurrence.rrule"),
    ({"rrule": "DTSTART:20260101T000000\nRRULE:FREQ=DAILY"}, "recurrence.rrule"),
    ({"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "recurrence.rrule"),  # never
    ({"rrule": "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31"}, "recurrence.rrule"),  # never
    ({"rrule": "FREQ=DAILY;UNTIL=20251231T000000"}, "recurrence.rrule"),  # before start
    ({"rrule": "FREQ=DAILY;COUNT=2", "end": {"after": 2}}, "recurrence.end"),
])
def test_bad_input_names_the_field(spec, field):
    if isinstance(spec, dict) and "start" not in spec:
        spec = {**spec, "start": S}
    with pytest.raises(RecurrenceError) as err:
        norm(spec)
    assert err.value.field == field
    assert str(err.value).startswith(field + ": ")
    assert isinstance(err.value, UserError)


def test_unknown_time_zone():
    with pytest.raises(RecurrenceError) as err:
        normalize({"pattern": "days"}, default_start=ANY_START, time_zone="Mars/Olympus")
    assert err.value.field == "time_zone"


def test_impossible_rrule_is_refused_quickly():
    began = time.perf_counter()
    with pytest.raises(RecurrenceError):
        norm({"rrule": "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=31", "start": S})
    assert time.perf_counter() - began < 3


# ---------------------------------------------------------------------------
# Performance: next_occurrence never walks from the start
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [
    {"pattern": "minutes"},
    {"pattern": "hours", "every": 7},
    {"pattern": "days"},
    {"pattern": "weeks", "weekdays": ["mon", "thu"]},
    {"pattern": "months", "day": 31},
    {"rrule": "FREQ=MINUTELY;INTERVAL=7;BYHOUR=9,10"},
])
def test_next_occurrence_years_after_the_start_is_fast(spec):
    spec = norm({**spec, "start": "1990-01-01T00:00:00"})
    began = time.perf_counter()
    for _ in range(20):
        found = next_occurrence(spec, CHI, datetime(2035, 6, 1, 12, 0))
    assert found > datetime(2035, 6, 1, 12, 0)
    assert (time.perf_counter() - began) / 20 < 0.02


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

ZONES = ["UTC", CHI, PAR, "Australia/Lord_Howe"]  # Lord Howe shifts by 30 minutes
weekday_names = st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
starts = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31))
# Times near the DST changes are where bugs live: bias toward them.
starts = st.one_of(starts, st.builds(
    lambda d, h, m: datetime.combine(d, datetime.min.time()).replace(hour=h, minute=m),
    st.sampled_from([date(2026, 3, 8), date(2026, 3, 29), date(2026, 10, 4),
                     date(2026, 10, 25), date(2026, 11, 1), date(2026, 4, 5)]),
    st.integers(0, 3), st.sampled_from([0, 15, 30, 45])))


@st.composite
def specs(draw):
    start = draw(starts).replace(microsecond=0)
    kind = draw(st.sampled_from(
        ["minutes", "hours", "days", "weeks", "months", "years", "rrule"]))
    if kind == "rrule":
        spec = {"rrule": draw(st.sampled_from([
            "FREQ=HOURLY;INTERVAL=5",
            "FREQ=MINUTELY;INTERVAL=45",
            "FREQ=DAILY;BYHOUR=1,2,3;BYMINUTE=0,30",
            "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,SU",
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
            "FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=31",
        ]))}
    else:
        every_max = {"minutes": 200, "hours": 50}.get(kind, 5)
        spec = {"pattern": kind, "every": draw(st.integers(1, every_max))}
        if kind == "weeks":
            spec["weekdays"] = draw(st.lists(weekday_names, min_size=1, max_size=7))
        if kind in ("months", "years"):
            if draw(st.booleans()):
                spec["day"] = draw(st.integers(1, 31))
            else:
                spec["nth"] = draw(st.sampled_from(["first", "second", "third", "fourth", "last"]))
                spec["weekday"] = draw(weekday_names)
        if kind == "years":
            spec["month"] = draw(st.integers(1, 12))
    spec["start"] = start.isoformat()
    spec["end"] = draw(st.one_of(
        st.just({"never": True}),
        st.builds(lambda n: {"after": n}, st.integers(1, 8)),
        st.builds(lambda d: {"by": (start.date() + timedelta(days=d)).isoformat()},
                  st.integers(0, 3000)),
    ))
    return spec


PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def normalized(spec, tz):
    try:
        return norm(spec, tz)
    except RecurrenceError as exc:
        # Only an end.by before the first occurrence may refuse a drawn spec.
        assert exc.field == "recurrence.end.by", exc
        assume(False)


@PROPS
@given(specs(), st.sampled_from(ZONES),
       st.datetimes(min_value=datetime(2023, 6, 1), max_value=datetime(2031, 1, 1)))
def test_property_occurrences_are_increasing_after_and_agree_with_next(spec, tz, after):
    spec = normalized(spec, tz)
    got = utc(occurrences(spec, tz, after=after, count=8))
    assert all(a < b for a, b in pairwise(got))
    assert all(g > after for g in got)
    assert next_occurrence(spec, tz, after) == (got[0] if got else None)
    if "after" in spec["end"]:
        assert len(utc(occurrences(spec, tz, count=50))) <= spec["end"]["after"]
    assert norm(spec, tz) == spec  # idempotent


@settings(PROPS, max_examples=300)
@given(specs(), st.sampled_from(ZONES), st.integers(0, 40),
       st.floats(min_value=0, max_value=1))
def test_property_restarting_from_any_point_gives_the_same_sequence(spec, tz, i, where):
    """Jumping ahead (next_occurrence after years) agrees with walking from the start."""
    spec = normalized(spec, tz)
    full = utc(occurrences(spec, tz, count=60))
    assert full, "normalize accepted a recurrence without occurrences"
    assert all(a < b for a, b in pairwise(full))
    if i < len(full):
        tail = utc(occurrences(spec, tz, after=full[i], count=10))
        assert tail == full[i + 1:i + 11]
    # Any instant between the first and the last occurrence seen.
    x = full[0] + (full[-1] - full[0]) * where - timedelta(seconds=1)
    expected = [f for f in full if f > x][:5]
    assert utc(occurrences(spec, tz, after=x, count=len(expected))) == expected
    assert next_occurrence(spec, tz, x) == expected[0]


@PROPS
@given(specs(), st.sampled_from(ZONES))
def test_property_calendar_patterns_keep_the_wall_clock(spec, tz):
    spec = normalized(spec, tz)
    zone_ = ZoneInfo(tz)
    start = datetime.fromisoformat(spec["start"])
    got = occurrences(spec, tz, count=30)
    if spec.get("pattern") in ("minutes", "hours"):
        step = timedelta(minutes=spec["every"]) if spec["pattern"] == "minutes" \
            else timedelta(hours=spec["every"])
        instants = utc(got)
        assert all(b - a == step for a, b in pairwise(instants))
        return
    if "pattern" not in spec:
        return
    for found in got:
        wall = datetime.combine(found.date(), start.time())
        placed = wall.replace(tzinfo=zone_)
        exists = placed.astimezone(UTC).astimezone(zone_).replace(tzinfo=None) == wall
        if exists:
            # The wall time itself, at its first occurrence (fold=0).
            assert found.replace(tzinfo=None) == wall and found.fold == 0
        else:
            # In a gap: the first instant after it, later on the same day.
            assert found.replace(tzinfo=None) > wall
            assert found - timedelta(seconds=1) < found  # sanity
            before = (found.astimezone(UTC) - timedelta(seconds=1)).astimezone(zone_)
            assert before.replace(tzinfo=None) < wall


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats(allow_nan=False)
    | st.sampled_from(["", "mon", "last", "days", "weeks", "months", "years", "minutes",
                       "2026-01-01", "2026-01-01T10:00:00", "FREQ=DAILY", "x"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["never", "after", "by", "x"]), inner, max_size=3),
    max_leaves=8)
junk_specs = st.dictionaries(
    st.sampled_from(["pattern", "every", "start", "end", "weekdays", "day", "nth",
                     "weekday", "month", "rrule", "text", "time_zone", "other"]),
    json_values, max_size=6)


@PROPS
@given(st.one_of(junk_specs, json_values))
def test_property_bad_input_raises_only_recurrence_error(spec):
    try:
        result = norm(spec)
    except RecurrenceError as exc:
        assert exc.field.startswith("recurrence") and str(exc).startswith(exc.field)
        return
    assert norm(result) == result
    assert isinstance(describe(result), str)
    occurrences(result, CHI, count=3)
