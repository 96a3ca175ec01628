"""The job file's JSON Schema (docs/jobfile.schema.json): made from jobfile.py's own key sets,
and agreeing with `job import` on the demo's exports, the documented sample and bad files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from batchtui import jobfile, jobs, jobschema
from batchtui import models as m
from batchtui.errors import UserError

jsonschema = pytest.importorskip("jsonschema")

DOCS = Path(__file__).resolve().parent.parent / "docs"


def validator():
    schema = json.loads((DOCS / "jobfile.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_schema_file_is_the_one_the_code_makes():
    assert (DOCS / "jobfile.schema.json").read_text() == jobschema.schema_text(), \
        "docs/jobfile.schema.json is stale: python -m batchtui.jobschema > docs/jobfile.schema.json"


def test_every_key_the_job_file_reads_has_a_property():
    job = jobschema.schema()["$defs"]["job"]["properties"]
    task = job["tasks"]["items"]["properties"]
    alert = job["alerts"]["items"]["properties"]
    condition = task["conditions"]["items"]["properties"]
    assert set(job) == set(jobfile.JOB_KEYS | jobfile.JOB_RUNTIME_KEYS)
    assert set(task) == set(jobfile.TASK_KEYS | jobfile.TASK_RUNTIME_KEYS)
    assert set(alert) == set(jobfile.ALERT_KEYS)
    assert set(condition) == set(jobfile.CONDITION_KEYS)


def documented_sample() -> dict:
    text = (DOCS / "cli.md").read_text()
    block = re.search(r"## Job file.*?```json\n(.*?)```", text, re.S)
    assert block is not None
    return json.loads(block.group(1))


def test_the_demo_exports_and_the_documented_sample_validate(database):
    from batchtui.demo import load_demo

    check = validator()
    load_demo(now=None)
    exported = [jobs.export_job(j.id) for j in m.BatchJob.select().order_by(m.BatchJob.id)]
    assert len(exported) > 20
    for item in exported:
        errors = [e.message for e in check.iter_errors(item)]
        assert not errors, (item.get("id"), errors)
    assert not list(check.iter_errors(exported))  # a list of jobs, as `job import` takes
    sample = documented_sample()
    assert not list(check.iter_errors(sample))
    jobfile.parse_jobs(sample)  # and `job import` takes it too


@pytest.mark.parametrize("change", [
    lambda j: j.update(priority="urgent"),
    lambda j: j.update(colour="red"),
    lambda j: j["tasks"][0].update(max_retries=9),
    lambda j: j["tasks"][0].update(conditions=[{"task": "x", "status": "done"}]),
    lambda j: j["alerts"][0].update(popup="yes"),
    lambda j: j["recurrence"].update(end={"after": 0}),
    lambda j: j["recurrence"].update(pattern="fortnights"),
    lambda j: j.pop("description"),
])
def test_what_the_schema_refuses_job_import_refuses_too(database, change):
    data = documented_sample()
    change(data)
    assert list(validator().iter_errors(data))
    with pytest.raises(UserError):
        jobfile.parse_jobs(data)
