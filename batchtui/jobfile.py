"""Job files: reading and validating the JSON that `batchtui job import` takes.

A job file holds one job object or a list of them (see the command-line
contract). This module turns the parsed JSON into `JobSpec` objects and
refuses anything it does not know, with one line that names the job, the task
and the field. It does no database I/O: whether a company or a batch group
exists is checked by `jobs.import_jobs`, in the transaction that creates the
jobs. The field checkers here are shared with `jobs` (the console's forms go
through them too), so a rule lives in one place.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import validators
from .errors import UserError
from .text import visible
from .timeutil import machine_zone, utcnow
from .validators import (  # noqa: F401 - the job file's limits and message helpers, as before
    FILE_STATUSES,
    MAX_COMPANY,
    MAX_DESCRIPTION,
    MAX_GROUP,
    MAX_KEY,
    MAX_RETRIES,
    MAX_USER,
    kind,
    q,
    shown,
)
from .vocabulary import BatchStatus, ConditionStatus, ConditionType, Priority

JOB_KEYS = frozenset({
    "description", "company", "scheduled_start", "time_zone", "status", "priority",
    "recurrence", "alerts", "tasks", "active_period", "late_after",
})
#: Read-only fields that `job export` adds; accepted and ignored on import so
#: that `job export N | job import -` makes a copy.
JOB_RUNTIME_KEYS = frozenset({"id", "created_by", "run_by", "last_run", "version", "created", "modified"})
#: The statuses `job export` prints for a job that has run (anything but withhold
#: or waiting): the copy is a new job, held back until someone lets it run.
RUNTIME_STATUSES = frozenset(s.cli for s in BatchStatus) - frozenset(FILE_STATUSES)
TASK_KEYS = frozenset({
    "key", "description", "class", "params", "company", "batch_group", "ignore_failure",
    "max_retries", "condition_type", "conditions", "time_limit",
})
TASK_RUNTIME_KEYS = frozenset({"id", "status", "retries_used", "waiting_reason", "kept"})
CONDITION_KEYS = frozenset({"task", "status"})
ALERT_KEYS = frozenset({"user", "ended", "error", "canceled", "popup", "email", "notify", "late"})
ALERT_FLAGS = ("ended", "error", "canceled", "popup", "email", "notify", "late")


class FieldError(UserError):
    """A value that is refused; the message names the job, the task and the field.

    The console reads `.field` to put the cursor on the offending input.
    """

    def __init__(self, reason: str, *, job: str | None = None, task: str | None = None,
                 field: str | None = None) -> None:
        self.job = job
        self.task = task
        self.field = field
        self.reason = reason
        # The task form opens its Parameters tab when `.param` is set (as on classes.ParamError).
        self.param = field[len("params."):] if field and field.startswith("params.") else None
        super().__init__(where(job, task, field) + reason)


class JobFileError(FieldError):
    """A job file that cannot be read at all (malformed JSON, wrong top-level shape)."""


def where(job: str | None = None, task: str | None = None, field: str | None = None) -> str:
    parts = []
    if job:
        parts.append(f"job {job}")
    if task:
        parts.append(f"task {task}")
    if field:
        parts.append(f"field {field}")
    return (", ".join(parts) + ": ") if parts else ""


# -- the specs ------------------------------------------------------------------


@dataclass
class ConditionSpec:
    task: str  # the parent task's key
    status: ConditionStatus = ConditionStatus.ENDED


@dataclass
class TaskSpec:
    key: str
    description: str
    class_name: str
    params: dict = field(default_factory=dict)
    company: str | None = None  # None: the job's
    batch_group: str = ""
    ignore_failure: bool = False
    max_retries: int = 0
    condition_type: ConditionType = ConditionType.ALL
    conditions: list[ConditionSpec] = field(default_factory=list)
    time_limit: float | None = None  # seconds an attempt may run


@dataclass
class AlertSpec:
    user: str
    ended: bool = False
    error: bool = False
    canceled: bool = False
    popup: bool = False
    email: bool = False
    notify: bool = False  # chat and webhooks: the config's notify_urls (Apprise)
    late: bool = False


@dataclass
class JobSpec:
    label: str  # how messages name the job
    description: str
    scheduled_start: datetime  # naive UTC
    time_zone: str
    company: str | None = None  # None: the default company
    status: BatchStatus = BatchStatus.HOLD
    priority: Priority = Priority.NORMAL
    recurrence: dict | None = None  # normalized
    recurrence_text: str = ""
    alerts: list[AlertSpec] = field(default_factory=list)
    tasks: list[TaskSpec] = field(default_factory=list)
    active_period: str | None = None  # a name; that it exists is checked when the job is created
    late_after: float | None = None  # seconds after its scheduled start by which a run should be over


# -- reading --------------------------------------------------------------------


def _decoded(text: str | bytes, source: str) -> str:
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JobFileError(f"{source} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return text[1:] if text.startswith("\ufeff") else text


def _unique_pairs(items: list[tuple[str, Any]]) -> dict:
    out: dict[str, Any] = {}
    for key, value in items:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _BadConstant(name)


def load_text(text: str | bytes, source: str = "job file", *, jobs: bool = True) -> Any:
    """Parse JSON text; malformed JSON, duplicate keys, NaN and lone surrogates are refused.

    jobs: the text is a job file, so a refusal names the job, the task and the field.
    """
    text = _decoded(text, source)
    data = _parse_json(text, source)
    found = _surrogate_at(data)
    if found is not None:
        path, char = found
        reason = f"holds {visible(char)}, a lone surrogate (half of a UTF-16 pair), which is not a character"
        if jobs:
            job, task, name = _job_field(data, path)
            raise FieldError(reason, job=job, task=task, field=name)
        raise JobFileError(f"{source}: field {_path_text(path) or '(top level)'}: {reason}")
    return data


def _parse_json(text: str, source: str) -> Any:
    malformed = f"{source} is malformed JSON"
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise JobFileError(f"{malformed}: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except _Duplicate as exc:
        raise JobFileError(f"{malformed}: the key {q(exc.args[0])} appears twice in one object") from None
    except _BadConstant as exc:
        raise JobFileError(f"{malformed}: {exc.args[0]} is not a JSON number") from None
    except RecursionError:
        raise JobFileError(f"{malformed}: nested too deeply") from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_at(data: Any) -> tuple[tuple[str | int, ...], str] | None:
    """Where the first lone surrogate of parsed JSON is (its path, and the surrogate), if any.

    JSON's \\u escapes can spell half of a surrogate pair: Python keeps it, and
    no database (nor the terminal) takes it as text. Walked without recursion:
    the JSON may be nested as deep as the parser allows.
    """
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            hit = _SURROGATE.search(value)
            if hit:
                return path, hit.group(0)
        elif isinstance(value, dict):
            items = list(value.items())
            for key, _ in items:
                hit = _SURROGATE.search(key)
                if hit:
                    return (*path, key), hit.group(0)
            stack.extend(((*path, key), item) for key, item in reversed(items))
        elif isinstance(value, list):
            stack.extend(((*path, i), item) for i, item in reversed(list(enumerate(value))))
    return None


def _path_text(path: tuple[str | int, ...]) -> str:
    """tasks[0].params.command[1], as the job file spells it."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{visible(part)}" if out else visible(part))
    return out


def _job_field(data: Any, path: tuple[str | int, ...]) -> tuple[str, str | None, str]:
    """A path in a job file as (job label, task label, field), as parse_job names them."""
    rest = list(path)
    job_obj = data
    index = 1
    if isinstance(data, list) and rest:
        index = int(rest.pop(0)) + 1
        job_obj = data[index - 1]
    job = _label(job_obj, ("description",), f"#{index}")
    task = None
    if len(rest) >= 2 and rest[0] == "tasks" and isinstance(rest[1], int):
        task_obj = job_obj["tasks"][rest[1]]
        task = _label(task_obj, ("key", "description"), f"#{rest[1] + 1}")
        rest = rest[2:]
    return job, task, _path_text(tuple(rest)) or "(the whole object)"


def _label(obj: Any, keys: tuple[str, ...], default: str) -> str:
    if isinstance(obj, dict):
        for key in keys:
            value = obj.get(key)
            if value is not None:
                ok = isinstance(value, str) and value.strip() and len(value) <= MAX_KEY
                return q(value) if ok and not _SURROGATE.search(value) else default
    return default


class _Duplicate(Exception):
    pass


class _BadConstant(Exception):
    pass


def parse_jobs(data: Any, *, now: datetime | None = None) -> list[JobSpec]:
    """Validate a parsed job file (one job object or a list) into JobSpecs."""
    if isinstance(data, dict):
        items = [data]
    elif isinstance(data, list):
        items = data
        if not items:
            raise JobFileError("the job file holds an empty list: no job to import")
    else:
        raise JobFileError(f"a job file holds a job object or a list of them, not {kind(data)}")
    now = now or utcnow()
    specs = [parse_job(item, index=i + 1, now=now) for i, item in enumerate(items)]
    return specs


def parse_job(obj: Any, *, index: int = 1, now: datetime | None = None) -> JobSpec:
    now = now or utcnow()
    label = f"#{index}"
    if not isinstance(obj, dict):
        raise FieldError(f"a job is an object, not {kind(obj)}", job=label)
    description = obj.get("description")
    if isinstance(description, str) and description.strip() and len(description) <= MAX_DESCRIPTION:
        label = q(description)
    _refuse_unknown(obj, JOB_KEYS, ignored=JOB_RUNTIME_KEYS, job=label)
    description = check_description(description, job=label)

    time_zone = _opt(obj, "time_zone")
    time_zone = machine_zone() if time_zone is None else check_time_zone(time_zone, job=label)

    company = _opt(obj, "company")
    if company is not None:
        company = check_company_id(company, job=label)

    start = _opt(obj, "scheduled_start")
    start = now if start is None else check_time(start, time_zone, job=label, field="scheduled_start")

    status = _opt(obj, "status")
    if status is None or (isinstance(status, str) and status in RUNTIME_STATUSES):
        status = BatchStatus.HOLD  # an export's run-time status: the copy starts in Withhold
    else:
        status = check_file_status(status, job=label)

    priority = _opt(obj, "priority")
    priority = Priority.NORMAL if priority is None else check_priority(priority, job=label)

    spec = JobSpec(label=label, description=description, scheduled_start=start, time_zone=time_zone,
                   company=company, status=status, priority=priority)

    period = _opt(obj, "active_period")
    if period is not None and period != "":
        if not isinstance(period, str):
            raise FieldError(f"an active period is a name, not {kind(period)}", job=label, field="active_period")
        spec.active_period = period

    late_after = _opt(obj, "late_after")
    if late_after is not None:
        spec.late_after = check_seconds(late_after, job=label, field="late_after")

    recurrence = _opt(obj, "recurrence")
    if recurrence is not None:
        if isinstance(recurrence, dict):
            recurrence = {k: v for k, v in recurrence.items() if k != "text"}  # export's sentence
        norm, text, first = normalize_recurrence(recurrence, start, time_zone, job=label)
        spec.recurrence, spec.recurrence_text, spec.scheduled_start = norm, text, first

    alerts = _opt(obj, "alerts")
    if alerts is not None:
        spec.alerts = _parse_alerts(alerts, job=label)

    tasks = _opt(obj, "tasks")
    if tasks is not None:
        spec.tasks = _parse_tasks(tasks, job=label)
    return spec


def _opt(obj: dict, key: str) -> Any:
    """An optional field; JSON null means "not given" (the default applies)."""
    return obj.get(key)


def _refuse_unknown(obj: dict, known: frozenset, *, ignored: frozenset = frozenset(), job=None, task=None,
                    prefix: str = "") -> None:
    for key in obj:
        if key not in known and key not in ignored:
            allowed = ", ".join(sorted(known))
            raise FieldError(f"unknown key (allowed: {allowed})", job=job, task=task,
                             field=f"{prefix}{key}" if isinstance(key, str) else repr(key))


def _parse_alerts(alerts: Any, *, job: str) -> list[AlertSpec]:
    if not isinstance(alerts, list):
        raise FieldError(f"expected a list of alert objects, got {kind(alerts)}", job=job, field="alerts")
    out: list[AlertSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(alerts):
        f = f"alerts[{i}]"
        if not isinstance(item, dict):
            raise FieldError(f"expected an alert object, got {kind(item)}", job=job, field=f)
        _refuse_unknown(item, ALERT_KEYS, job=job, prefix=f + ".")
        user = check_user(item.get("user"), job=job, field=f + ".user")
        if user in seen:
            raise FieldError(f"user {q(user)} has two alert settings for this job (one per user)",
                             job=job, field=f + ".user")
        seen.add(user)
        flags = {}
        for flag in ALERT_FLAGS:
            value = item.get(flag)
            flags[flag] = False if value is None else check_bool(value, job=job, field=f"{f}.{flag}")
        out.append(AlertSpec(user=user, **flags))
    return out


def _parse_tasks(tasks: Any, *, job: str) -> list[TaskSpec]:
    if not isinstance(tasks, list):
        raise FieldError(f"expected a list of task objects, got {kind(tasks)}", job=job, field="tasks")
    specs: list[TaskSpec] = []
    keys: dict[str, int] = {}
    for i, item in enumerate(tasks):
        specs.append(_parse_task(item, i, keys, job=job))
    for spec, item in zip(specs, tasks, strict=True):
        raw = item.get("conditions")
        if raw is not None:
            spec.conditions = _parse_conditions(raw, spec.key, keys, job=job)
    cycle = find_cycle({s.key: [c.task for c in s.conditions] for s in specs})
    if cycle:
        raise FieldError("conditions form a cycle: " + " -> ".join(q(k) for k in cycle),
                         job=job, task=q(cycle[0]), field="conditions")
    return specs


def _parse_task(item: Any, index: int, keys: dict[str, int], *, job: str) -> TaskSpec:
    """One task object, without its conditions (they name other tasks: read once all are known).
    Its key is added to keys (key -> index), refused if an earlier task has it."""
    tlabel = f"#{index + 1}"
    if not isinstance(item, dict):
        raise FieldError(f"a task is an object, not {kind(item)}", job=job, task=tlabel)
    key = item.get("key")
    if key is None:
        key = item.get("description")
    if isinstance(key, str) and key.strip() and len(key) <= MAX_KEY:
        tlabel = q(key)
    _refuse_unknown(item, TASK_KEYS, ignored=TASK_RUNTIME_KEYS, job=job, task=tlabel)
    description = check_description(item.get("description"), job=job, task=tlabel)
    key = description if item.get("key") is None else check_key(item.get("key"), job=job, task=tlabel)
    if key in keys:
        raise FieldError(
            f"two tasks have the key {q(key)} (tasks #{keys[key] + 1} and #{index + 1}); "
            "give each task a unique \"key\"", job=job, task=tlabel, field="key")
    keys[key] = index
    params = item.get("params")
    class_name, params = check_class_params(item.get("class"), {} if params is None else params,
                                            job=job, task=tlabel)
    spec = TaskSpec(key=key, description=description, class_name=class_name, params=params)
    if item.get("company") is not None:
        spec.company = check_company_id(item["company"], job=job, task=tlabel)
    if item.get("batch_group") is not None:
        spec.batch_group = check_group_name(item["batch_group"], job=job, task=tlabel)
    if item.get("ignore_failure") is not None:
        spec.ignore_failure = check_bool(item["ignore_failure"], job=job, task=tlabel, field="ignore_failure")
    if item.get("max_retries") is not None:
        spec.max_retries = check_max_retries(item["max_retries"], job=job, task=tlabel)
    if item.get("condition_type") is not None:
        spec.condition_type = check_condition_type(item["condition_type"], job=job, task=tlabel)
    if item.get("time_limit") is not None:
        spec.time_limit = check_seconds(item["time_limit"], job=job, task=tlabel, field="time_limit")
    return spec


def _parse_conditions(raw: Any, key: str, keys: dict[str, int], *, job: str) -> list[ConditionSpec]:
    tlabel = q(key)
    if not isinstance(raw, list):
        raise FieldError(f"expected a list of condition objects, got {kind(raw)}",
                         job=job, task=tlabel, field="conditions")
    conditions: list[ConditionSpec] = []
    for j, cond in enumerate(raw):
        f = f"conditions[{j}]"
        if not isinstance(cond, dict):
            raise FieldError(f"expected a condition object, got {kind(cond)}", job=job, task=tlabel, field=f)
        _refuse_unknown(cond, CONDITION_KEYS, job=job, task=tlabel, prefix=f + ".")
        parent = cond.get("task")
        if not isinstance(parent, str) or not parent:
            raise FieldError(f"expected the key of a task of this job, got {kind(parent)}",
                             job=job, task=tlabel, field=f + ".task")
        if parent not in keys:
            raise FieldError(f"no task {q(parent)} in this job", job=job, task=tlabel, field=f + ".task")
        if parent == key:
            raise FieldError("a task cannot depend on itself", job=job, task=tlabel, field=f + ".task")
        if any(c.task == parent for c in conditions):
            raise FieldError(f"a second condition on task {q(parent)} (one per parent task)",
                             job=job, task=tlabel, field=f + ".task")
        status = cond.get("status")
        status = ConditionStatus.ENDED if status is None else check_condition_status(
            status, job=job, task=tlabel, field=f + ".status")
        conditions.append(ConditionSpec(task=parent, status=status))
    return conditions


def find_cycle(graph: dict) -> list | None:
    """A cycle in a task -> parents graph, as [a, b, ..., a], or None.

    Nodes are visited in the graph's order, so the report is deterministic.
    """
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in graph}
    for root in graph:
        if colour[root] != WHITE:
            continue
        path = [root]
        colour[root] = GREY
        stack = [iter(graph.get(root, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                stack.pop()
                continue
            if colour.get(nxt, BLACK) == GREY:
                return path[path.index(nxt):] + [nxt]
            if colour.get(nxt) == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                stack.append(iter(graph.get(nxt, ())))
    return None


# -- field checkers (shared with jobs.py) ----------------------------------------
#
# The rules live in ``validators`` (the console's forms use them too); here
# they name the job, the task and the field as the job file spells them.


@contextmanager
def _naming(job, task, field):
    try:
        yield
    except validators.Invalid as exc:
        raise FieldError(exc.reason, job=job, task=task, field=field) from None


def check_text(value: Any, *, limit: int, job=None, task=None, field: str, what: str = "text",
               allow_empty: bool = False) -> str:
    with _naming(job, task, field):
        return validators.text(value, limit=limit, what=what, allow_empty=allow_empty)


def check_description(value: Any, *, job=None, task=None) -> str:
    with _naming(job, task, "description"):
        return validators.description(value)


def check_key(value: Any, *, job=None, task=None) -> str:
    with _naming(job, task, "key"):
        return validators.key(value)


def check_user(value: Any, *, job=None, task=None, field: str = "user") -> str:
    with _naming(job, task, field):
        return validators.user_name(value)


def check_company_id(value: Any, *, job=None, task=None, field: str = "company") -> str:
    with _naming(job, task, field):
        return validators.company_id(value)


def check_group_name(value: Any, *, job=None, task=None, field: str = "batch_group") -> str:
    with _naming(job, task, field):
        return validators.group_name(value)


def check_bool(value: Any, *, job=None, task=None, field: str) -> bool:
    with _naming(job, task, field):
        return validators.flag(value)


def check_max_retries(value: Any, *, job=None, task=None, field: str = "max_retries") -> int:
    with _naming(job, task, field):
        return validators.max_retries(value)


def check_seconds(value: Any, *, job=None, task=None, field: str) -> float:
    with _naming(job, task, field):
        return validators.seconds(value)


def check_priority(value: Any, *, job=None, task=None, field: str = "priority") -> Priority:
    with _naming(job, task, field):
        return validators.priority(value)


def check_file_status(value: Any, *, job=None, field: str = "status") -> BatchStatus:
    with _naming(job, None, field):
        return validators.file_status(value)


def check_condition_type(value: Any, *, job=None, task=None, field: str = "condition_type") -> ConditionType:
    with _naming(job, task, field):
        return validators.condition_type(value)


def check_condition_status(value: Any, *, job=None, task=None, field: str = "status") -> ConditionStatus:
    with _naming(job, task, field):
        return validators.condition_status(value)


def check_time_zone(value: Any, *, job=None, field: str = "time_zone") -> str:
    with _naming(job, None, field):
        return validators.time_zone(value)


def check_time(value: Any, time_zone: str, *, job=None, task=None, field: str) -> datetime:
    """ISO 8601 text (offset optional, else read in time_zone), or a datetime, as naive UTC."""
    with _naming(job, task, field):
        return validators.date_time(value, time_zone)


def check_class_params(class_name: Any, params: Any, *, job=None, task=None) -> tuple[str, dict]:
    """The class exists and the parameters fit it; returns (name, normalized params)."""
    from . import classes

    if not isinstance(class_name, str) or not class_name.strip():
        what = "is required" if class_name is None else f"must be a class name, not {kind(class_name)}"
        raise FieldError(f"a batch class {what} (see `batchtui classes`)", job=job, task=task, field="class")
    if not isinstance(params, dict):
        raise FieldError(f"expected an object of parameters, got {kind(params)}", job=job, task=task,
                         field="params")
    try:
        cls = classes.get_class(class_name)
    except UserError as exc:
        raise FieldError(_reason(exc), job=job, task=task, field="class") from None
    try:
        normalized = classes.validate_params(cls, params)
    except UserError as exc:
        param = getattr(exc, "param", None)
        raise FieldError(_reason(exc), job=job, task=task,
                         field=f"params.{param}" if param else "params") from None
    return class_name, normalized


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def normalize_recurrence(spec: Any, start: datetime, time_zone: str, *, job=None) -> tuple[dict, str, datetime]:
    """Validate a recurrence object: (normalized spec, sentence, first occurrence as naive UTC).

    The job's scheduled start becomes the first occurrence: a start that does
    not fit the pattern is not an occurrence (the contract's "last Friday"
    example), so the job first runs when the recurrence first fires.
    """
    from . import recurrence

    if not isinstance(spec, dict):
        raise FieldError(f"expected a recurrence object, got {kind(spec)}", job=job, field="recurrence")
    try:
        norm = recurrence.normalize(spec, default_start=start, time_zone=time_zone)
        text = recurrence.describe(norm)
        first = recurrence.occurrences(norm, time_zone, count=1, closed=closed_days_of(norm, job=job))
    except FieldError:
        raise
    except UserError as exc:
        sub = getattr(exc, "field", None) or "recurrence"
        if sub != "time_zone" and not sub.startswith("recurrence"):
            sub = f"recurrence.{sub}"
        why = getattr(exc, "why", None) or _reason(exc)
        raise FieldError(" ".join(str(why).split()), job=job, field=sub) from None
    if not first:
        calendar, _ = recurrence.calendar_of(norm)
        if calendar is not None:
            raise FieldError(f"the recurrence has no occurrence on an open day of calendar {q(calendar)} (within "
                             "two years of a closed one)", job=job, field="recurrence.calendar")
        raise FieldError("the recurrence has no occurrence (check its start, end and pattern)",
                         job=job, field="recurrence")
    return norm, text, _naive_utc(first[0])


def closed_days_of(norm: dict, *, job=None):
    """The closed days of the calendar a normalized recurrence names (None: it names none)."""
    from .calendars import closed_days_for

    try:
        return closed_days_for(norm)
    except UserError as exc:
        raise FieldError(_reason(exc), job=job, field="recurrence.calendar") from None


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
