"""The ERP's batch tables as Peewee models.

Times are naive UTC datetimes (see timeutil). Statuses are the integers of
``status.BatchStatus``. Only ``status`` (the status machine) writes a status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from peewee import (
    SQL,
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    Field,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    NodeList,
    TextField,
)

database = DatabaseProxy()


class JSONField(TextField):
    """JSON kept as text, so SQLite and PostgreSQL store it alike."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, sort_keys=True)

    def python_value(self, value):
        return None if value is None else json.loads(value)


# Annotations without a value (``job_id: Field[int]``) declare no column:
# they tell mypy about what peewee adds by itself, the ``<foreign key>_id``
# accessor of each foreign key (the field on the class, the raw id on a row).
# Every integer id is an IdField, named on its model.

# A foreign key whose column leads a composite index below has index=False:
# that index serves its look-ups, and each index less is one B-tree less to
# write on every status change of the batch server.


class IdField(AutoField):
    """A table's id, never given twice, not even the id of a deleted row.

    SQLite: INTEGER PRIMARY KEY AUTOINCREMENT (without it SQLite gives the id
    after the largest one left, that of a row just deleted); PostgreSQL: SERIAL,
    whose sequence never goes back. The tables are made by the migrations
    (step 6 on SQLite); this is what the models say of them.
    """

    def ddl(self, ctx):
        node = super().ddl(ctx)
        if ctx.state.field_types.get(self.field_type) == "INTEGER":  # SQLite's AUTO type
            return NodeList((node, SQL("AUTOINCREMENT")))
        return node


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Company(BaseModel):
    """A legal entity (the ERP's company accounts, e.g. USMF)."""

    id = CharField(primary_key=True, max_length=8)
    name = CharField(default="")


class BatchGroup(BaseModel):
    """A batch group; the Empty batch group has the blank name ''."""

    name = CharField(primary_key=True, max_length=40)
    description = CharField(default="")
    # Batch concurrency control: 0 no limit, N > 0 at most N tasks of the
    # group run at once across every batch server, -1 the group is stopped.
    max_concurrent = IntegerField(default=0)


class BatchGroupServer(BaseModel):
    """Which batch servers serve a batch group (by server name)."""

    id = IdField()
    group = ForeignKeyField(BatchGroup, backref="servers", on_delete="CASCADE",
                            column_name="group_name")
    server = CharField(max_length=80)
    group_id: Field[str]

    class Meta:
        indexes = ((("group", "server"), True),)


class BatchServer(BaseModel):
    """A batch server (the ERP's AOS instance) and its heartbeat."""

    name = CharField(primary_key=True, max_length=80)
    host = CharField(default="")
    pid = IntegerField(default=0)
    threads = IntegerField(default=8)
    started = DateTimeField(null=True)
    heartbeat = DateTimeField(null=True)
    stopped = DateTimeField(null=True)
    # The fencing token: up by one at each registration and when another server
    # declares this one dead (engine/store.py, migrations/v4_fencing.py).
    epoch = IntegerField(default=0)
    # How many tasks it may run now (its schedule window; 0 paused), as it last wrote.
    threads_now = IntegerField(default=0)


class ServerConfig(BaseModel):
    """The ERP's Server configuration form: a batch server's settings, kept apart from
    its heartbeat row so that a manager may set them before the server first runs.
    A running server reads them within its poll interval; they win over its flags."""

    name = CharField(primary_key=True, max_length=80)
    threads = IntegerField(null=True)  # None: the server's --threads
    reserved = IntegerField(default=0)  # threads only Reserved-capacity jobs take
    schedule = JSONField(null=True)  # ["HH:MM-HH:MM=N", ...] in the server machine's zone
    paused = BooleanField(default=False)
    modified = DateTimeField(null=True)
    modified_by = CharField(default="", max_length=80)


class ActivePeriod(BaseModel):
    """Active periods for batch jobs: when a job that names one may start a run."""

    name = CharField(primary_key=True, max_length=40)
    description = CharField(default="", max_length=200)
    start = CharField(max_length=5)  # HH:MM in the job's time zone
    end = CharField(max_length=5)
    weekdays = CharField(default="", max_length=40)  # "mon,tue"; "" every day
    start_date = CharField(null=True, max_length=10)  # YYYY-MM-DD, inclusive
    end_date = CharField(null=True, max_length=10)


class BatchJob(BaseModel):
    id = IdField()
    description = CharField(max_length=200)
    company = ForeignKeyField(Company, backref="jobs", on_delete="RESTRICT")
    scheduled_start = DateTimeField()
    time_zone = CharField(max_length=64)
    status = IntegerField()
    priority = IntegerField(default=1)
    recurrence = JSONField(null=True)
    recurrence_text = CharField(default="", max_length=300)
    created_by = CharField(max_length=80)
    run_by = CharField(max_length=80)
    created = DateTimeField()
    modified = DateTimeField()
    # Optimistic concurrency: every save bumps it; a save that read an older
    # version is refused as "changed by another user".
    version = IntegerField(default=1)
    run_count = IntegerField(default=0)
    current_run = IntegerField(null=True)
    # The runs made for the current recurrence: "End after N" counts these (runs,
    # not occurrences); set back to 0 whenever the recurrence is set.
    recurrence_runs = IntegerField(default=0)
    active_period = CharField(null=True, max_length=40)
    # The occurrence an active period held back: the scheduled start then
    # moved to the period's next opening (None when nothing is held back).
    deferred_from = DateTimeField(null=True)
    # Beyond the ERP (migrations/v8_beyond_erp.py): a run not ended this many seconds after its
    # scheduled start raises the `late` alerts; an operator's pending "run" or "rerun" request;
    # the status a Withhold or Waiting job goes back to after such a run.
    late_after = FloatField(null=True)
    run_request = CharField(null=True, max_length=8)
    run_return = IntegerField(null=True)
    company_id: Field[str]

    class Meta:
        # (created_by, id) and (company, id): `job list --user/--company --limit` (migrations/v8).
        indexes = ((("status", "scheduled_start"), False), (("created_by", "id"), False),
                   (("company", "id"), False))


class BatchTask(BaseModel):
    id = IdField()
    job = ForeignKeyField(BatchJob, backref="tasks", on_delete="CASCADE", index=False)
    key = CharField(max_length=200)
    description = CharField(max_length=200)
    company = ForeignKeyField(Company, on_delete="RESTRICT")
    class_name = CharField(max_length=200)
    params = JSONField(default=dict)
    batch_group = CharField(default="", max_length=40)
    status = IntegerField()
    ignore_failure = BooleanField(default=False)
    max_retries = IntegerField(default=0)
    retries_used = IntegerField(default=0)
    condition_type = IntegerField(default=0)
    # A task waiting for a retry is Ready but not before this time.
    not_before = DateTimeField(null=True)
    server = CharField(null=True, max_length=80)
    attempt = IntegerField(null=True)  # the TaskAttempt running now
    attempts = IntegerField(default=0)  # attempts made in the current run
    version = IntegerField(default=1)
    # Copied from the job when a run starts, so that the batch server finds the
    # next Ready task to run by walking one index (see migrations/v1_tables.py).
    job_priority = IntegerField(default=1)
    job_start = DateTimeField(null=True)
    time_limit = FloatField(null=True)  # seconds an attempt may run; None: no limit
    kept = BooleanField(default=False)  # its Ended status was kept by the rerun now running
    job_id: Field[int]
    company_id: Field[str]

    class Meta:
        # More (partial) indexes in migrations/v1_tables.py.
        indexes = ((("job", "status"), False),)


class BatchConstraint(BaseModel):
    """A row of the Has conditions grid: parent task and its expected status."""

    id = IdField()
    task = ForeignKeyField(BatchTask, backref="conditions", on_delete="CASCADE", index=False)
    parent = ForeignKeyField(BatchTask, backref="dependents", on_delete="CASCADE")
    expected = IntegerField()  # status.ConditionStatus
    task_id: Field[int]
    parent_id: Field[int]

    class Meta:
        indexes = ((("task", "parent"), True),)


class JobAlert(BaseModel):
    """One user's alert settings for one job (the Alerts dialog)."""

    id = IdField()
    job = ForeignKeyField(BatchJob, backref="alerts", on_delete="CASCADE", index=False)
    user = CharField(max_length=80)
    ended = BooleanField(default=False)
    error = BooleanField(default=False)
    canceled = BooleanField(default=False)
    popup = BooleanField(default=False)
    email = BooleanField(default=False)
    notify = BooleanField(default=False)  # chat and webhooks (config notify_urls, Apprise)
    late = BooleanField(default=False)
    job_id: Field[int]

    class Meta:
        indexes = ((("job", "user"), True),)


class JobRun(BaseModel):
    """One run of a job (Batch job history)."""

    id = IdField()
    job = ForeignKeyField(BatchJob, backref="runs", on_delete="CASCADE", index=False)
    run_no = IntegerField()
    scheduled = DateTimeField()
    started = DateTimeField()
    ended = DateTimeField(null=True)  # index job_run_ended (runs that are over): migrations/v13
    status = IntegerField()
    server = CharField(default="", max_length=80)
    late_alerted = BooleanField(default=False)  # its late alerts were raised (compare-and-set)
    requested = CharField(null=True, max_length=8)  # "run" (run now), "rerun"; None: an occurrence
    job_id: Field[int]

    class Meta:
        indexes = ((("job", "run_no"), True),)


class RunTask(BaseModel):
    """A task's final status in a run that is over (history)."""

    id = IdField()
    run = ForeignKeyField(JobRun, backref="task_results", on_delete="CASCADE", index=False)
    task = ForeignKeyField(BatchTask, on_delete="CASCADE")
    status = IntegerField()
    retries_used = IntegerField(default=0)
    kept = BooleanField(default=False)  # a rerun kept its Ended status: no attempt in this run
    run_id: Field[int]
    task_id: Field[int]

    class Meta:
        indexes = ((("run", "task"), True),)


class TaskAttempt(BaseModel):
    """One attempt of a task in a run, with its log (the ERP's infolog)."""

    id = IdField()
    run = ForeignKeyField(JobRun, backref="attempts", on_delete="CASCADE", index=False)
    task = ForeignKeyField(BatchTask, backref="attempt_history", on_delete="CASCADE")
    attempt = IntegerField()
    status = IntegerField()
    started = DateTimeField()
    ended = DateTimeField(null=True)
    server = CharField(default="", max_length=80)
    log = TextField(default="")
    progress = FloatField(null=True)  # 0..1 as the batch class reports it
    progress_text = CharField(null=True, max_length=200)
    epoch = IntegerField(null=True)  # its server's epoch when it was claimed
    # Where a shell task's command runs: host name, process group, and the
    # pid space and leader start time that identify the group (procs.group_key).
    host = CharField(null=True, max_length=80)
    pgid = BigIntegerField(null=True)
    pgid_key = CharField(null=True, max_length=120)
    # 1 while it is claimed ahead and its start not recorded (migrations/v12): taken back, it used no retry.
    # Kept once it is closed when it was handed back before its class began: not an attempt that ran
    # (see ran_or_runs).
    queued = IntegerField(null=True)
    run_id: Field[int]
    task_id: Field[int]

    class Meta:
        indexes = ((("run", "task", "attempt"), False),)

    @classmethod
    def ran_or_runs(cls) -> Any:
        """The attempts history shows: all but those handed back before their class began
        (a task that never started in a run has no attempt; the number it took stays used)."""
        return cls.queued.is_null() | cls.ended.is_null()


class Alert(BaseModel):
    """An Action-center alert for one user."""

    id = IdField()
    user = CharField(max_length=80)
    job = ForeignKeyField(BatchJob, null=True, on_delete="SET NULL")
    run = ForeignKeyField(JobRun, null=True, on_delete="SET NULL")
    event = CharField(max_length=16)  # ended, error, canceled
    message = TextField()
    created = DateTimeField()
    read = BooleanField(default=False)
    popup = BooleanField(default=False)
    email = BooleanField(default=False)
    mailed = BooleanField(default=False)  # before schema 8; no longer read (email_state says it)
    # Delivery, per channel (engine/delivery.py): state None (not asked), pending, sent or failed;
    # attempts so far; not before (next retry, or the end of a claim's lease); who holds the claim;
    # the last error. notify_done: the URLs (digests) a notice reached already.
    email_state = CharField(null=True, max_length=8)
    email_tries = IntegerField(default=0)
    email_next = DateTimeField(null=True)
    email_claim = CharField(null=True, max_length=120)
    email_error = TextField(null=True)
    notify_state = CharField(null=True, max_length=8)
    notify_tries = IntegerField(default=0)
    notify_next = DateTimeField(null=True)
    notify_claim = CharField(null=True, max_length=120)
    notify_error = TextField(null=True)
    notify_done = TextField(null=True)
    job_id: Field[int | None]
    run_id: Field[int | None]

    class Meta:
        indexes = ((("user", "read"), False),)


class JobAudit(BaseModel):
    """One change an operator made to a job (audit.py). ``job_id`` is no foreign key: the
    trail stays after the job is deleted. ``old`` and ``new`` are JSON values."""

    id = IdField()
    job_id = IntegerField()
    at = DateTimeField()
    user = CharField(max_length=80)
    action = CharField(max_length=20)
    field = CharField(null=True, max_length=300)
    old = JSONField(null=True)
    new = JSONField(null=True)

    class Meta:
        indexes = ((("job_id", "id"), False),)


class ClosedCalendar(BaseModel):
    """A calendar of closed days (calendars.py) that a recurrence may name."""

    name = CharField(primary_key=True, max_length=40)
    description = CharField(default="", max_length=200)
    dates = JSONField(default=list)  # ["YYYY-MM-DD", ...]
    weekends = BooleanField(default=False)
    country = CharField(null=True, max_length=8)  # public holidays of (holidays package)
    subdiv = CharField(null=True, max_length=16)


ALL_MODELS = [
    Company,
    BatchGroup,
    BatchGroupServer,
    BatchServer,
    ServerConfig,
    ActivePeriod,
    BatchJob,
    BatchTask,
    BatchConstraint,
    JobAlert,
    JobRun,
    RunTask,
    TaskAttempt,
    Alert,
    JobAudit,
    ClosedCalendar,
]


#: The largest id a row can have (SQLite's INTEGER; PostgreSQL's SERIAL stops sooner): a larger
#: number names no row, and is not even sent (the SQLite driver cannot bind it).
MAX_ID = 2**63 - 1


def storable_id(value: Any) -> bool:
    """False for a whole number no row can have as its id (it is not looked up: no such row)."""
    return not isinstance(value, int) or -MAX_ID - 1 <= value <= MAX_ID


def tuples(query: Any) -> Iterator[tuple[Any, ...]]:
    """The rows of a query as tuples (peewee's annotations type ``.tuples()`` as model instances)."""
    return iter(query.tuples())
