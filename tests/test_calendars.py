"""Calendars of closed days (issue 14): the property that no occurrence falls on a closed day
and that moved ones keep their wall time across daylight-saving changes; the batch server
and the job service computing the next start with them on SQLite and PostgreSQL; the
command line; managers only."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from batchtui import calendars, jobs, recurrence
from batchtui import models as m
from batchtui.actor import Actor
from batchtui.errors import NotAllowed, Refused, UserError
from batchtui.recurrence.closed import ClosedDays
from batchtui.recurrence.occurrence import utc_to_wall, wall_to_utc
from batchtui.timeutil import utcnow, zone
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, make_job, wait_for
from .faultkit import assert_one_error_line, run_cli

BOSS = Actor.of("boss", managers=["boss"])
OPS = Actor.of("ops")
ZONES = ["America/Chicago", "Europe/Berlin", "Australia/Sydney", "UTC"]


# -- the property -------------------------------------------------------------------


def _originals(spec, tz, count):
    plain = {k: v for k, v in spec.items() if k not in ("calendar", "on_closed_day")}
    return [o.astimezone(zone("UTC")).replace(tzinfo=None) for o in recurrence.occurrences(plain, tz, count=count)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tz=hs.sampled_from(ZONES),
    pattern=hs.sampled_from([("days", 1), ("days", 2), ("weeks", 1), ("hours", 5), ("months", 1)]),
    # Starts around the daylight-saving changes of 2027 (March, April, October, November).
    start=hs.datetimes(min_value=datetime(2027, 3, 1), max_value=datetime(2027, 11, 20)),
    weekends=hs.booleans(),
    offsets=hs.sets(hs.integers(min_value=0, max_value=120), max_size=40),
    move=hs.booleans(),
)
def test_no_occurrence_falls_on_a_closed_day_and_moved_ones_keep_their_wall_time(tz, pattern, start, weekends,
                                                                                  offsets, move):
    start = start.replace(second=0, microsecond=0)
    closed = ClosedDays({start.date() + timedelta(days=n) for n in offsets}, weekends)
    spec = recurrence.normalize({"pattern": pattern[0], "every": pattern[1], "start": start.isoformat(),
                                 "calendar": "Plant", "on_closed_day": "next_open_day" if move else "skip"},
                                default_start=start, time_zone=tz)
    got = [o.astimezone(zone("UTC")).replace(tzinfo=None)
           for o in recurrence.occurrences(spec, tz, count=40, closed=closed)]
    place = zone(tz)
    assert got == sorted(set(got))  # strictly increasing, each once
    for at in got:
        assert not closed(utc_to_wall(at, place).date()), at
    if not got:
        return
    horizon = got[-1]
    originals = [o for o in _originals(spec, tz, 400) if o <= horizon]
    open_ones = [o for o in originals if not closed(utc_to_wall(o, place).date())]
    assert set(open_ones) <= set(got)  # an occurrence on an open day is never lost
    if not move:
        assert got == open_ones  # skip: exactly the open ones
        return
    moved_set = set()
    for o in originals:
        wall = utc_to_wall(o, place)
        if not closed(wall.date()):
            continue
        target = closed.next_open(wall.date())
        assert target is not None
        wanted = datetime.combine(target, wall.time())
        moved = wall_to_utc(wanted, place)
        if moved > horizon:
            continue
        moved_set.add(moved)
        assert moved in got, (o, moved)
        # The same time of day in the job's zone on the next open day; only a wall time that does
        # not exist that day (a spring-forward gap) is placed at the first instant after the gap.
        moved_wall = utc_to_wall(moved, place)
        assert moved_wall == wanted or timedelta(0) < moved_wall - wanted <= timedelta(hours=1), (o, moved_wall)
    assert set(got) - set(open_ones) <= moved_set  # nothing else


def test_a_moved_occurrence_keeps_its_wall_time_across_the_spring_change():
    # Chicago springs forward on Sunday 2027-03-14: Saturday and Sunday closed, moved to Monday 22:00 CDT.
    closed = ClosedDays(weekends=True)
    spec = recurrence.normalize({"pattern": "days", "start": "2027-03-12T22:00:00", "calendar": "Plant",
                                 "on_closed_day": "next_open_day"}, default_start=datetime(2027, 3, 12),
                                time_zone="America/Chicago")
    got = [o.isoformat() for o in recurrence.occurrences(spec, "America/Chicago", count=3, closed=closed)]
    assert got == ["2027-03-12T22:00:00-06:00", "2027-03-15T22:00:00-05:00", "2027-03-16T22:00:00-05:00"]
    # Asked after Saturday's occurrence (from inside the closed stretch): Monday is still found.
    after = datetime(2027, 3, 14, 12, 0)
    assert recurrence.next_occurrence(spec, "America/Chicago", after, closed=closed) == datetime(2027, 3, 16, 3, 0)
    with pytest.raises(ValueError, match="closed days must be given"):
        recurrence.occurrences(spec, "America/Chicago", count=1)


def test_a_calendar_that_closes_every_occurrence_ends_the_recurrence_instead_of_hanging():
    spec = recurrence.normalize({"pattern": "weeks", "weekdays": ["sat"], "start": "2027-01-02T10:00:00",
                                 "calendar": "Plant"}, default_start=datetime(2027, 1, 2), time_zone="UTC")
    assert recurrence.occurrences(spec, "UTC", count=3, closed=ClosedDays(weekends=True)) == []


# -- the batch server and the job service, SQLite and PostgreSQL --------------------------


@pytest.mark.parametrize("which", ["sqlite", "postgres"])
def test_the_batch_server_moves_the_next_start_past_the_closed_days(which, request):
    request.getfixturevalue("database" if which == "sqlite" else "pg_database")
    make = request.getfixturevalue("engine_factory" if which == "sqlite" else "pg_engine_factory")
    tz = "America/Chicago"
    today = utc_to_wall(utcnow(), zone(tz)).date()
    closed_dates = [(today + timedelta(days=n)).isoformat() for n in range(0, 4)]
    calendars.add_calendar("Plant", actor=BOSS, dates=closed_dates)
    start = datetime.combine(today - timedelta(days=1), time(6, 30))
    spec = recurrence.normalize({"pattern": "days", "start": start.isoformat(), "calendar": "Plant",
                                 "on_closed_day": "next_open_day"}, default_start=start, time_zone=tz)
    job_id, _ids = make_job([{"key": "a"}], recurrence=spec, start=utcnow() - timedelta(minutes=1), time_zone=tz)
    make()
    wait_for(lambda: m.BatchJob.get_by_id(job_id).run_count == 1 and job_status(job_id) == S.WAITING)
    job = m.BatchJob.get_by_id(job_id)
    # The occurrences of the four closed days run once, on the fifth day at 06:30 in Chicago.
    assert utc_to_wall(job.scheduled_start, zone(tz)) == datetime.combine(today + timedelta(days=4), time(6, 30))
    assert jobs.export_job(job_id)["recurrence"]["calendar"] == "Plant"
    with pytest.raises(Refused, match=f"used by the recurrence of job {job_id}"):
        calendars.delete_calendar("Plant", actor=BOSS)


def test_the_job_service_refuses_an_unknown_calendar_and_a_recurrence_it_closes_for_ever(database):
    calendars.add_calendar("Weekends", actor=BOSS, weekends=True)
    job = jobs.create_job(actor=OPS, description="Close", scheduled_start="2027-01-04T22:00:00", time_zone="UTC")
    with pytest.raises(UserError, match="recurrence.calendar.*no such calendar.*Weekends"):
        jobs.set_recurrence(job.id, {"pattern": "days", "calendar": "Nope"}, actor=OPS)
    with pytest.raises(UserError, match="no occurrence on an open day"):
        jobs.set_recurrence(job.id, {"pattern": "weeks", "weekdays": ["sun"], "calendar": "Weekends"}, actor=OPS)
    with pytest.raises(UserError, match="on_closed_day"):
        jobs.set_recurrence(job.id, {"pattern": "days", "calendar": "Weekends", "on_closed_day": "later"}, actor=OPS)
    saved = jobs.set_recurrence(job.id, {"pattern": "days", "start": "2027-01-02T22:00:00", "calendar": "Weekends"},
                                actor=OPS)
    assert saved.scheduled_start == datetime(2027, 1, 4, 22, 0)  # Saturday and Sunday skipped
    assert saved.recurrence_text.endswith("skipping the closed days of Weekends")
    with pytest.raises(NotAllowed, match="only a batch job manager"):
        calendars.add_calendar("Mine", actor=OPS, weekends=True)
    with pytest.raises(NotAllowed):
        calendars.delete_calendar("Weekends", actor=OPS)


def test_on_postgres_only_a_manager_changes_calendars(shared_db):  # noqa: F811
    from .test_pg_identity import ALICE, sql
    from .test_pg_identity import BOSS as PG_BOSS

    with pytest.raises(Exception, match="only a batch job manager may"):
        sql(shared_db, ALICE, "INSERT INTO closed_calendar (name, description, dates, weekends) "
                              "VALUES ('x', '', '[]', true)")
    sql(shared_db, PG_BOSS, "INSERT INTO closed_calendar (name, description, dates, weekends) "
                            "VALUES ('x', '', '[]', true)")
    assert sql(shared_db, ALICE, "SELECT name FROM closed_calendar") == [("x",)]


from .test_pg_identity import shared_db  # noqa: E402, F401

# -- the command line ---------------------------------------------------------------


def test_calendar_commands_end_to_end(db_url, database, tmp_path):
    (tmp_path / "config.toml").write_text('managers = ["boss"]\n')
    env_cfg = {"BATCHTUI_CONFIG": str(tmp_path / "config.toml")}

    def cli(*args, user="boss", stdin=None):
        from .faultkit import env_for
        return run_cli(list(args), db_url, stdin=stdin, env=env_for(db_url, BATCHTUI_USER=user, **env_cfg))

    assert_one_error_line(cli("calendar", "add", "Plant", "--weekends", user="ops"))
    assert_one_error_line(cli("calendar", "add", "Plant", "--country", "XX"))
    assert_one_error_line(cli("calendar", "add", "Plant", "--country", "US", "--subdiv", "ZZ"))
    assert_one_error_line(cli("calendar", "add", "Plant", "--dates", "2027-02-30"))
    assert_one_error_line(cli("calendar", "add", "Plant", "--subdiv", "TX"))
    proc = cli("calendar", "add", "Plant", "--weekends", "--country", "us", "--subdiv", "tx", "--dates",
               "2027-07-05", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["country"] == "US"
    proc = cli("calendar", "show", "Plant", "--from", "2027-07-01", "--to", "2027-07-12", "--json")
    assert json.loads(proc.stdout) == ["2027-07-03", "2027-07-04", "2027-07-05", "2027-07-10", "2027-07-11"]
    assert_one_error_line(cli("calendar", "show", "Plant", "--from", "2027-07-12", "--to", "2027-07-01"))
    assert_one_error_line(cli("calendar", "show", "Nope", "--from", "2027-07-01", "--to", "2027-07-02"))
    rec = tmp_path / "rec.json"
    rec.write_text(json.dumps({"pattern": "days", "start": "2027-07-02T22:00:00", "time_zone": "America/Chicago",
                               "calendar": "Plant", "on_closed_day": "next_open_day"}))
    proc = cli("recurrence", "preview", str(rec), "--count", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["occurrences"] == [
        "2027-07-02T22:00:00-05:00", "2027-07-06T22:00:00-05:00", "2027-07-07T22:00:00-05:00"]
    job = {"description": "Close", "time_zone": "America/Chicago", "scheduled_start": "2027-07-02T22:00:00",
           "recurrence": json.loads(rec.read_text()), "tasks": []}
    proc = cli("job", "import", "-", "--json", user="ops", stdin=json.dumps(job).encode())
    assert proc.returncode == 0, proc.stderr
    job_id = json.loads(proc.stdout)["jobs"][0]["id"]
    line = assert_one_error_line(cli("calendar", "delete", "Plant"))
    assert f"job {job_id}" in line
    listed = json.loads(cli("calendar", "list", "--json").stdout)
    assert [(c["name"], c["jobs"]) for c in listed] == [("Plant", [job_id])]
    assert cli("job", "delete", str(job_id), user="ops").returncode == 0
    assert cli("calendar", "delete", "Plant").returncode == 0
    assert json.loads(cli("calendar", "list", "--json").stdout) == []


def test_the_demo_puts_the_plant_calendar_on_the_month_end_jobs_and_has_an_audit_trail(database):
    from batchtui import audit
    from batchtui.demo.data import PLANT, load_demo

    load_demo(now=datetime(2026, 3, 2, 14, 0))
    closed = calendars.closed_days(PLANT)
    month_end = [j for j in m.BatchJob.select() if (j.recurrence or {}).get("calendar") == PLANT]
    assert sorted(j.description for j in month_end) == ["Foreign currency revaluation (month-end)",
                                                        "Inventory close (monthly)"]
    tz = zone("America/Chicago")
    for job in month_end:
        runs = list(m.JobRun.select().where(m.JobRun.job == job.id))
        assert runs and all(not closed(utc_to_wall(r.scheduled, tz).date()) for r in runs), job.description
        assert not closed(utc_to_wall(job.scheduled_start, tz).date())
    close = next(j for j in month_end if j.description == "Inventory close (monthly)")
    assert {e["user"] for e in audit.entries(close.id)} >= {"ops", "admin", "Admin"}


@pytest.mark.parametrize("which", ["sqlite", "postgres"])
def test_a_calendar_change_moves_a_waiting_job_off_a_day_it_now_closes(which, request):
    from batchtui import audit
    from batchtui import status as st

    request.getfixturevalue("database" if which == "sqlite" else "pg_database")
    calendars.add_calendar("Plant", actor=BOSS)
    job = jobs.create_job(actor=OPS, description="Close", scheduled_start="2027-07-02T22:00:00",
                          time_zone="America/Chicago")
    jobs.set_recurrence(job.id, {"pattern": "days", "calendar": "Plant", "on_closed_day": "next_open_day"},
                        actor=OPS)
    st.set_job_status(job.id, S.WAITING, OPS)
    other = jobs.create_job(actor=OPS, description="Held", scheduled_start="2027-07-02T22:00:00",
                            time_zone="America/Chicago")
    jobs.set_recurrence(other.id, {"pattern": "days", "calendar": "Plant"}, actor=OPS)  # Withhold: left alone
    calendars.add_calendar("Plant", actor=BOSS, dates=["2027-07-02", "2027-07-05"], weekends=True, replace=True)
    moved = m.BatchJob.get_by_id(job.id)
    assert utc_to_wall(moved.scheduled_start, zone("America/Chicago")) == datetime(2027, 7, 6, 22, 0)
    assert m.BatchJob.get_by_id(other.id).scheduled_start == datetime(2027, 7, 3, 3, 0)
    last = audit.entries(job.id)[-1]
    assert (last["user"], last["action"], last["field"], last["old"], last["new"]) == (
        "boss", "changed", "scheduled_start", "2027-07-02T22:00:00-05:00", "2027-07-06T22:00:00-05:00")
