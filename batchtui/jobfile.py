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
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import UserError
from .text import visible
from .timeutil import machine_zone, to_utc, utcnow, zone
from .vocabulary import BatchStatus, ConditionStatus, ConditionType, Priority

MAX_DESCRIPTION = 200
MAX_KEY = 200
MAX_USER = 80
MAX_GROUP = 40
MAX_COMPANY = 8
MAX_RETRIES = 5

JOB_KEYS = frozenset({
    "description", "company", "scheduled_start", "time_zone", "status", "priority",
    "recurrence", "alerts", "tasks",
})
#: Read-only fields that `job export` adds; accepted and ignored on import so
#: that `job export N | job import -` makes a copy.
JOB_RUNTIME_KEYS = frozenset({"id", "created_by", "run_by", "last_run", "version", "created", "modified"})
TASK_KEYS = frozenset({
    "key", "description", "class", "params", "company", "batch_group", "ignore_failure",
    "max_retries", "condition_type", "conditions",
})
TASK_RUNTIME_KEYS = frozenset({"id", "status", "retries_used"})
CONDITION_KEYS = frozenset({"task", "status"})
ALERT_KEYS = frozenset({"user", "ended", "error", "canceled", "popup", "email"})
ALERT_FLAGS = ("ended", "error", "canceled", "popup", "email")
FILE_STATUSES = ("withhold", "waiting")


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


@dataclass
class AlertSpec:
    user: str
    ended: bool = False
    error: bool = False
    canceled: bool = False
    popup: bool = False
    email: bool = False


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


# -- reading --------------------------------------------------------------------


def load_text(text: str | bytes, source: str = "job file") -> Any:
    """Parse JSON text; malformed JSON, duplicate keys and NaN are refused."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JobFileError(f"{source} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    elif text.startswith("\ufeff"):
        text = text[1:]

    def pairs(items):
        out = {}
        for key, value in items:
            if key in out:
                raise _Duplicate(key)
            out[key] = value
        return out

    def constant(name):
        raise _BadConstant(name)

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise JobFileError(
            f"{source} is malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except _Duplicate as exc:
        raise JobFileError(f"{source} is malformed JSON: the key {q(exc.args[0])} appears twice in one object") from None
    except _BadConstant as exc:
        raise JobFileError(f"{source} is malformed JSON: {exc.args[0]} is not a JSON number") from None
    except RecursionError:
        raise JobFileError(f"{source} is malformed JSON: nested too deeply") from None


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
    status = BatchStatus.HOLD if status is None else check_file_status(status, job=label)

    priority = _opt(obj, "priority")
    priority = Priority.NORMAL if priority is None else check_priority(priority, job=label)

    spec = JobSpec(label=label, description=description, scheduled_start=start, time_zone=time_zone,
                   company=company, status=status, priority=priority)

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
    raw_conditions: list[Any] = []
    keys: dict[str, int] = {}
    for i, item in enumerate(tasks):
        tlabel = f"#{i + 1}"
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
                f"two tasks have the key {q(key)} (tasks #{keys[key] + 1} and #{i + 1}); "
                "give each task a unique \"key\"", job=job, task=tlabel, field="key")
        keys[key] = i
        class_name = item.get("class")
        params = item.get("params")
        params = {} if params is None else params
        class_name, params = check_class_params(class_name, params, job=job, task=tlabel)
        company = item.get("company")
        if company is not None:
            company = check_company_id(company, job=job, task=tlabel)
        group = item.get("batch_group")
        group = "" if group is None else check_group_name(group, job=job, task=tlabel)
        ignore = item.get("ignore_failure")
        ignore = False if ignore is None else check_bool(ignore, job=job, task=tlabel, field="ignore_failure")
        retries = item.get("max_retries")
        retries = 0 if retries is None else check_max_retries(retries, job=job, task=tlabel)
        ctype = item.get("condition_type")
        ctype = ConditionType.ALL if ctype is None else check_condition_type(ctype, job=job, task=tlabel)
        specs.append(TaskSpec(key=key, description=description, class_name=class_name, params=params,
                              company=company, batch_group=group, ignore_failure=ignore,
                              max_retries=retries, condition_type=ctype))
        raw_conditions.append(item.get("conditions"))

    for spec, raw in zip(specs, raw_conditions):
        if raw is None:
            continue
        tlabel = q(spec.key)
        if not isinstance(raw, list):
            raise FieldError(f"expected a list of condition objects, got {kind(raw)}",
                             job=job, task=tlabel, field="conditions")
        parents: set[str] = set()
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
            if parent == spec.key:
                raise FieldError("a task cannot depend on itself", job=job, task=tlabel, field=f + ".task")
            if parent in parents:
                raise FieldError(f"a second condition on task {q(parent)} (one per parent task)",
                                 job=job, task=tlabel, field=f + ".task")
            parents.add(parent)
            status = cond.get("status")
            status = ConditionStatus.ENDED if status is None else check_condition_status(
                status, job=job, task=tlabel, field=f + ".status")
            spec.conditions.append(ConditionSpec(task=parent, status=status))

    cycle = find_cycle({s.key: [c.task for c in s.conditions] for s in specs})
    if cycle:
        raise FieldError("conditions form a cycle: " + " -> ".join(q(k) for k in cycle),
                         job=job, task=q(cycle[0]), field="conditions")
    return specs


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


def _one_line(value: str) -> bool:
    return not any(unicodedata.category(ch) == "Cc" for ch in value)


def check_text(value: Any, *, limit: int, job=None, task=None, field: str, what: str = "text",
               allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        if value is None and not allow_empty:
            raise FieldError(f"{what} is required", job=job, task=task, field=field)
        raise FieldError(f"expected text, got {kind(value)}", job=job, task=task, field=field)
    if not allow_empty and not value.strip():
        raise FieldError(f"{what} must not be empty", job=job, task=task, field=field)
    if len(value) > limit:
        raise FieldError(f"{len(value)} characters is too long (at most {limit})", job=job, task=task, field=field)
    if not _one_line(value):
        raise FieldError("must be one line of text without control characters", job=job, task=task, field=field)
    return value


def check_description(value: Any, *, job=None, task=None) -> str:
    return check_text(value, limit=MAX_DESCRIPTION, job=job, task=task, field="description",
                      what="a description")


def check_key(value: Any, *, job=None, task=None) -> str:
    return check_text(value, limit=MAX_KEY, job=job, task=task, field="key", what="a key")


def check_user(value: Any, *, job=None, task=None, field: str = "user") -> str:
    return check_text(value, limit=MAX_USER, job=job, task=task, field=field, what="a user name")


def check_company_id(value: Any, *, job=None, task=None, field: str = "company") -> str:
    return check_text(value, limit=MAX_COMPANY, job=job, task=task, field=field, what="a company")


def check_group_name(value: Any, *, job=None, task=None, field: str = "batch_group") -> str:
    return check_text(value, limit=MAX_GROUP, job=job, task=task, field=field, allow_empty=True)


def check_bool(value: Any, *, job=None, task=None, field: str) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"expected true or false, got {shown(value)}", job=job, task=task, field=field)
    return value


def check_max_retries(value: Any, *, job=None, task=None, field: str = "max_retries") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f"expected a whole number from 0 to {MAX_RETRIES}, got {shown(value)}",
                         job=job, task=task, field=field)
    if not 0 <= value <= MAX_RETRIES:
        raise FieldError(f"{value} is out of range: 0 to {MAX_RETRIES} retries", job=job, task=task, field=field)
    return value


def _choice(value: Any, allowed: tuple[str, ...], *, job, task, field) -> str:
    if not isinstance(value, str) or value not in allowed:
        what = q(value) if isinstance(value, str) else shown(value)
        raise FieldError(f"{what} is not one of {', '.join(allowed)}", job=job, task=task, field=field)
    return value


def check_priority(value: Any, *, job=None, task=None, field: str = "priority") -> Priority:
    if isinstance(value, Priority):
        return value
    return Priority.from_cli(_choice(value, tuple(p.cli for p in Priority), job=job, task=task, field=field))


def check_file_status(value: Any, *, job=None, field: str = "status") -> BatchStatus:
    if isinstance(value, str) and value in {s.cli for s in BatchStatus} and value not in FILE_STATUSES:
        raise FieldError(f"{q(value)} cannot be given in a job file: a new job is withhold or waiting",
                         job=job, field=field)
    return BatchStatus.from_cli(_choice(value, FILE_STATUSES, job=job, task=None, field=field))


def check_condition_type(value: Any, *, job=None, task=None, field: str = "condition_type") -> ConditionType:
    if isinstance(value, ConditionType):
        return value
    value = _choice(value, ("all", "any"), job=job, task=task, field=field)
    return ConditionType.ALL if value == "all" else ConditionType.ANY


def check_condition_status(value: Any, *, job=None, task=None, field: str = "status") -> ConditionStatus:
    if isinstance(value, ConditionStatus):
        return value
    return ConditionStatus.from_cli(
        _choice(value, tuple(c.cli for c in ConditionStatus), job=job, task=task, field=field))


def check_time_zone(value: Any, *, job=None, field: str = "time_zone") -> str:
    if not isinstance(value, str):
        raise FieldError(f"expected an IANA time zone name (e.g. America/Chicago), got {kind(value)}",
                         job=job, field=field)
    try:
        zone(value)
    except UserError:
        raise FieldError(f"unknown time zone {q(value)} (use an IANA name such as America/Chicago)",
                         job=job, field=field) from None
    return value


def check_time(value: Any, time_zone: str, *, job=None, task=None, field: str) -> datetime:
    """ISO 8601 text (offset optional, else read in time_zone), or a datetime, as naive UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)
    if not isinstance(value, str) or not value.strip():
        raise FieldError(f"expected an ISO 8601 date/time such as 2026-12-01T22:00:00, got {kind(value)}",
                         job=job, task=task, field=field)
    raw = value.strip()
    if raw[-1] in "Zz":
        raw = raw[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise FieldError(f"{q(value)} is not an ISO 8601 date/time (e.g. 2026-12-01T22:00:00)",
                         job=job, task=task, field=field) from None
    try:
        return to_utc(parsed, zone(time_zone))
    except (OverflowError, ValueError):
        raise FieldError(f"{q(value)} is out of range", job=job, task=task, field=field) from None


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
        first = recurrence.occurrences(norm, time_zone, count=1)
    except UserError as exc:
        sub = getattr(exc, "field", None) or "recurrence"
        if sub != "time_zone" and not sub.startswith("recurrence"):
            sub = f"recurrence.{sub}"
        why = getattr(exc, "why", None) or _reason(exc)
        raise FieldError(" ".join(str(why).split()), job=job, field=sub) from None
    if not first:
        raise FieldError("the recurrence has no occurrence (check its start, end and pattern)",
                         job=job, field="recurrence")
    return norm, text, _naive_utc(first[0])


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
