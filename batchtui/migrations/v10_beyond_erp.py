"""Schema version 10: beyond the ERP (issue 14): time limits, late alerts, run now, rerun.

- ``batch_task.time_limit``: seconds an attempt may run before its batch
  server stops it (its process group killed) and it ends in Error; NULL none.
- ``batch_job.late_after``: seconds after a run's scheduled start by which it
  should have ended; ``job_alert.late``: the user wants a ``late`` alert then;
  ``job_run.late_alerted``: the compare-and-set marker that lets exactly one
  batch server raise a run's late alerts.
- ``batch_job.run_request``: an operator's durable request for a run now
  (``run``) or a rerun from the failed tasks (``rerun``); a batch server
  consumes it with a compare-and-set. ``batch_job.run_return``: the status a
  Withhold or Waiting job goes back to after such a run (its recurrence is not
  moved); ``job_run.requested``: what the run was for (NULL an occurrence).
- ``batch_task.kept`` and ``run_task.kept``: a task whose Ended status a rerun
  kept (no new attempt).
- ``batch_job_run_request``: the jobs with a pending request, a few index
  entries (partial).

Frozen: fields and values written out.
"""

from __future__ import annotations

from peewee import CharField, FloatField, IntegerField, PostgresqlDatabase
from playhouse.migrate import migrate

REQUEST_INDEX = ("CREATE INDEX IF NOT EXISTS batch_job_run_request ON batch_job (id) "
                 "WHERE run_request IS NOT NULL")

#: The NOT NULL flags, added by ALTER TABLE with a default: on SQLite playhouse would rebuild
#: the table for a NOT NULL column, and the copy of a table with AUTOINCREMENT leaves a row in
#: sqlite_sequence that a fresh database does not have.
FLAGS = (("batch_task", "kept"), ("run_task", "kept"), ("job_alert", "late"), ("job_run", "late_alerted"))


def apply(db, migrator) -> None:
    pg = isinstance(db, PostgresqlDatabase)
    migrate(
        migrator.add_column("batch_task", "time_limit", FloatField(null=True)),
        migrator.add_column("batch_job", "late_after", FloatField(null=True)),
        migrator.add_column("batch_job", "run_request", CharField(null=True, max_length=8)),
        migrator.add_column("batch_job", "run_return", IntegerField(null=True)),
        migrator.add_column("job_run", "requested", CharField(null=True, max_length=8)),
    )
    for table, column in FLAGS:
        kind = "BOOLEAN NOT NULL DEFAULT false" if pg else "INTEGER NOT NULL DEFAULT 0"
        db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {kind}')
    db.execute_sql(REQUEST_INDEX)
