"""A JSON Schema of job files, for editors (completion, checks as you type).

    python -m batchtui.jobschema > docs/jobfile.schema.json

Built from the job file's own key sets and limits (jobfile.py, validators.py,
recurrence): tests/test_jobschema.py checks that docs/jobfile.schema.json is
what this prints, that every key jobfile.py reads has a property here, and
that `job export` output and the sample files validate. The schema checks the
shape; `job import` checks the rest (a known class and its parameters, a
company that exists, tasks without a cycle) and says which job, task and field.
"""

from __future__ import annotations

import json
from typing import Any

from . import jobfile
from .recurrence import NTHS, PATTERNS, WEEKDAYS
from .validators import (
    FILE_STATUSES,
    MAX_COMPANY,
    MAX_DESCRIPTION,
    MAX_GROUP,
    MAX_KEY,
    MAX_RETRIES,
    MAX_SECONDS,
    MAX_USER,
)
from .vocabulary import BatchStatus, ConditionStatus, ConditionType, Priority

SCHEMA_ID = "https://batchtui.invalid/jobfile.schema.json"


def _text(limit: int, description: str, *, empty: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "maxLength": limit, "description": description}
    if not empty:
        out["minLength"] = 1
    return out


def _seconds(description: str) -> dict[str, Any]:
    return {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_SECONDS,
            "description": f"{description} (seconds)."}


def _read_only(description: str, kind: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": f"{description} Written by `job export`; ignored by `job import`."}
    if kind is not None:
        out["type"] = kind
    return out


def _recurrence() -> dict[str, Any]:
    day_names = [str(d) for d in WEEKDAYS]
    end = {
        "description": "When the recurrence ends: exactly one of never, after (runs), by (a date, inclusive).",
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "properties": {
            "never": {"const": True},
            "after": {"type": "integer", "minimum": 1},
            "by": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        },
    }
    return {
        "description": "How the job repeats: a pattern (minutes ... years) or an iCalendar RRULE.",
        "type": "object",
        "properties": {
            "pattern": {"enum": [str(p) for p in PATTERNS]},
            "every": {"type": "integer", "minimum": 1, "description": "every N minutes, hours, days ..."},
            "start": {"type": "string", "description": "first run, ISO 8601 (default: scheduled_start)"},
            "end": end,
            "weekdays": {"type": "array", "items": {"enum": day_names}, "minItems": 1, "uniqueItems": True,
                         "description": "weeks: the days it runs on"},
            "day": {"type": "integer", "minimum": 1, "maximum": 31, "description": "months, years: day of the month"},
            "nth": {"enum": [str(n) for n in NTHS], "description": "months, years: with weekday"},
            "weekday": {"enum": day_names, "description": "months, years: with nth"},
            "month": {"type": "integer", "minimum": 1, "maximum": 12, "description": "years: the month"},
            "rrule": {"type": "string", "description": "an iCalendar RRULE instead of pattern"},
            "text": _read_only("The recurrence in words.", "string"),
            "time_zone": {"type": "string", "description": "tolerated (recurrence preview files)"},
        },
        "additionalProperties": True,  # the recurrence module names an unknown key, with the field
    }


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a job file: one job object, or a list of them."""
    statuses = [s.cli for s in BatchStatus]
    condition = {
        "type": "object",
        "additionalProperties": False,
        "required": ["task"],
        "properties": {
            "task": _text(MAX_KEY, "the key of the parent task (in this job)"),
            "status": {"enum": [s.cli for s in ConditionStatus], "description": "the parent's status to wait for"},
        },
    }
    task_props: dict[str, Any] = {
        "key": _text(MAX_KEY, "names the task in conditions (default: its description)"),
        "description": _text(MAX_DESCRIPTION, "Description"),
        "class": _text(200, "the batch class (`batchtui classes`)"),
        "params": {"type": "object", "description": "the class's parameters (`batchtui classes --json`)"},
        "company": _text(MAX_COMPANY, "Company accounts (default: the job's)"),
        "batch_group": _text(MAX_GROUP, "Batch group (\"\": the empty batch group)", empty=True),
        "ignore_failure": {"type": "boolean"},
        "max_retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES},
        "condition_type": {"enum": [c.cli for c in ConditionType]},
        "conditions": {"type": "array", "items": condition},
        "time_limit": _seconds("Time limit: an attempt still running after it is stopped and ends Error"),
        "id": _read_only("Task ID.", "integer"),
        "status": _read_only("The task's status.", "string"),
        "retries_used": _read_only("Retries used in the current run.", "integer"),
        "waiting_reason": _read_only("Why a task that could start has not.", ["string", "null"]),
        "kept": _read_only("Kept from a run."),
    }
    alert = {
        "type": "object",
        "additionalProperties": False,
        "required": ["user"],
        "properties": {"user": _text(MAX_USER, "who is alerted"),
                       **{flag: {"type": "boolean"} for flag in jobfile.ALERT_FLAGS}},
    }
    job_props: dict[str, Any] = {
        "description": _text(MAX_DESCRIPTION, "Job description"),
        "company": _text(MAX_COMPANY, "Company (default: the config's default_company)"),
        "scheduled_start": {"type": "string", "description": "ISO 8601; wall time in time_zone without an offset"},
        "time_zone": {"type": "string", "description": "IANA zone (default: the machine's)"},
        "status": {"enum": sorted(set(FILE_STATUSES) | set(statuses)),
                   "description": "withhold or waiting; an export's other statuses import as withhold"},
        "priority": {"enum": [p.cli for p in Priority]},
        "recurrence": {"oneOf": [_recurrence(), {"type": "null"}]},
        "alerts": {"type": "array", "items": alert},
        "tasks": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                             "required": ["description", "class"], "properties": task_props}},
        "active_period": {"type": ["string", "null"], "description": "an active period's name"},
        "late_after": _seconds("Late after: a run not over that long after its scheduled start raises `late` alerts"),
        "id": _read_only("Job ID.", "integer"),
        "created_by": _read_only("Who created the job.", "string"),
        "run_by": _read_only("Who the tasks run as.", "string"),
        "last_run": _read_only("The last run."),
        "version": _read_only("The job's version.", "integer"),
        "created": _read_only("When created.", "string"),
        "modified": _read_only("When last changed.", "string"),
    }
    job = {"type": "object", "additionalProperties": False, "required": ["description"], "properties": job_props}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "batchtui job file",
        "description": "One batch job, or a list of them, as `batchtui job import` reads and `job export` "
                       "writes (docs/cli.md).",
        "$defs": {"job": job},
        "oneOf": [{"$ref": "#/$defs/job"}, {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/job"}}],
    }


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    print(schema_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
