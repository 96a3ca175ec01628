"""Schema version 11: the PostgreSQL guards of a job's rows are skipped in C when they would do nothing.

Step 2 put a PL/pgSQL trigger on every row written to ``batch_job`` and to
the tables of a job's parts (tasks, conditions, alert settings, runs, run
tasks, attempts, alerts). For a member of ``batchtui_server`` or
``batchtui_manager`` the parts' guard does nothing but return the row, and
the job's guard does nothing on an UPDATE that keeps ``created_by`` and
``run_by`` by someone who may manage the job, or on a DELETE by such a one.
Yet each call built ``to_jsonb`` of both rows and asked ``pg_has_role``
twice in PL/pgSQL: one batch server writes a dozen rows a task, and ran
about 20 % slower with them (issue 17, measured: 1,541 against 1,934
one-task jobs a second).

The triggers are made again with a ``WHEN`` condition that is true exactly
when the function would act (refuse, or force the owner columns); the
executor evaluates it without calling the function. The functions are
unchanged, and who may do what is as before:

- a job's INSERT always runs the guard (it sets Created by and Run by to
  the inserting role unless it is a superuser);
- a job's UPDATE runs it when ``created_by`` or ``run_by`` would change, or
  when the role may not manage the job (``batchtui_may_manage``);
- a job's DELETE runs it when the role may not manage the job;
- a part's INSERT, UPDATE or DELETE runs it unless the role is a member of
  ``batchtui_server`` or ``batchtui_manager`` (a superuser is a member of
  every role).

SQLite has no roles: nothing to do there. Frozen: the SQL is written out.
"""

from __future__ import annotations

from peewee import PostgresqlDatabase

PART_TABLES = ("batch_task", "batch_constraint", "job_alert", "job_run", "run_task", "task_attempt", "alert")

SERVER_OR_MANAGER = ("(pg_has_role(current_user, 'batchtui_server', 'MEMBER') "
                     "OR pg_has_role(current_user, 'batchtui_manager', 'MEMBER'))")

JOB_TRIGGERS = (
    "CREATE TRIGGER batchtui_guard BEFORE INSERT ON batch_job "
    "FOR EACH ROW EXECUTE FUNCTION batchtui_guard_job()",
    "CREATE TRIGGER batchtui_guard_update BEFORE UPDATE ON batch_job FOR EACH ROW "
    "WHEN (NEW.created_by IS DISTINCT FROM OLD.created_by OR NEW.run_by IS DISTINCT FROM OLD.run_by "
    "OR NOT batchtui_may_manage(OLD.created_by)) "
    "EXECUTE FUNCTION batchtui_guard_job()",
    "CREATE TRIGGER batchtui_guard_delete BEFORE DELETE ON batch_job FOR EACH ROW "
    "WHEN (NOT batchtui_may_manage(OLD.created_by)) "
    "EXECUTE FUNCTION batchtui_guard_job()",
)


def apply(db, migrator) -> None:
    if not isinstance(db, PostgresqlDatabase):
        return
    db.execute_sql("DROP TRIGGER IF EXISTS batchtui_guard ON batch_job")
    for sql in JOB_TRIGGERS:
        db.execute_sql(sql)
    for table in PART_TABLES:
        db.execute_sql(f"DROP TRIGGER IF EXISTS batchtui_guard ON {table}")
        db.execute_sql(f"CREATE TRIGGER batchtui_guard BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW WHEN (NOT {SERVER_OR_MANAGER}) EXECUTE FUNCTION batchtui_guard_part()")
