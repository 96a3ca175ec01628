"""Schema version 7: the ERP's scheduling controls (issue 13).

- ``active_period``: Active periods for batch jobs; ``batch_job.active_period``
  names one (a job starts a run only inside it) and ``batch_job.deferred_from``
  keeps the occurrence a closed period held back.
- ``batch_group.max_concurrent``: batch concurrency control (0 no limit,
  N at most N running tasks across every server, -1 stopped).
- ``server_config``: the Server configuration form (threads, reserved
  threads, schedule, paused), kept apart from the heartbeat row;
  ``batch_server.threads_now`` is what a running server applies now.
- ``batch_task_running_group``: the running tasks of each group, so that a
  claim counts a limited group's running tasks in a few index entries. Partial:
  only Executing (2) and Canceling (7) tasks are in it.

On PostgreSQL the new tables get step 2's grants, and a guard: only batch
job managers (``batchtui_manager``) and superusers change a period or a
server's configuration; operators and batch servers read them.

Frozen: fields and values written out, statuses as the numbers they are.
"""

from __future__ import annotations

from peewee import CharField, DateTimeField, IntegerField, PostgresqlDatabase
from playhouse.migrate import migrate

SQLITE_TABLES = [
    ('CREATE TABLE IF NOT EXISTS "server_config" ("name" VARCHAR(80) NOT NULL PRIMARY KEY, '
     '"threads" INTEGER, "reserved" INTEGER NOT NULL, "schedule" TEXT, "paused" INTEGER NOT NULL, '
     '"modified" DATETIME, "modified_by" VARCHAR(80) NOT NULL)'),
    ('CREATE TABLE IF NOT EXISTS "active_period" ("name" VARCHAR(40) NOT NULL PRIMARY KEY, '
     '"description" VARCHAR(200) NOT NULL, "start" VARCHAR(5) NOT NULL, "end" VARCHAR(5) NOT NULL, '
     '"weekdays" VARCHAR(40) NOT NULL, "start_date" VARCHAR(10), "end_date" VARCHAR(10))'),
]

POSTGRES_TABLES = [
    ('CREATE TABLE IF NOT EXISTS "server_config" ("name" VARCHAR(80) NOT NULL PRIMARY KEY, '
     '"threads" INTEGER, "reserved" INTEGER NOT NULL, "schedule" TEXT, "paused" BOOLEAN NOT NULL, '
     '"modified" TIMESTAMP, "modified_by" VARCHAR(80) NOT NULL)'),
    ('CREATE TABLE IF NOT EXISTS "active_period" ("name" VARCHAR(40) NOT NULL PRIMARY KEY, '
     '"description" VARCHAR(200) NOT NULL, "start" VARCHAR(5) NOT NULL, "end" VARCHAR(5) NOT NULL, '
     '"weekdays" VARCHAR(40) NOT NULL, "start_date" VARCHAR(10), "end_date" VARCHAR(10))'),
]

RUNNING_INDEX = ("CREATE INDEX IF NOT EXISTS batch_task_running_group ON batch_task (batch_group) "
                 "WHERE status IN (2, 7)")

# Only a batch job manager (or a superuser) changes the settings tables.
GUARD_SETTINGS = """
CREATE OR REPLACE FUNCTION batchtui_guard_settings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (pg_has_role(current_user, 'batchtui_manager', 'MEMBER')
            OR COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)) THEN
        RAISE EXCEPTION 'batchtui: user % may not change %: only a batch job manager may',
            current_user, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$
"""

SETTINGS_TABLES = ("server_config", "active_period")

GRANTS = [
    ("GRANT SELECT, INSERT, UPDATE, DELETE ON server_config, active_period "
     "TO batchtui_operator, batchtui_manager, batchtui_server"),
]


def apply(db, migrator) -> None:
    pg = isinstance(db, PostgresqlDatabase)
    for sql in POSTGRES_TABLES if pg else SQLITE_TABLES:
        db.execute_sql(sql)
    migrate(
        migrator.add_column("batch_group", "max_concurrent", IntegerField(default=0)),
        migrator.add_column("batch_job", "active_period", CharField(null=True, max_length=40)),
        migrator.add_column("batch_job", "deferred_from", DateTimeField(null=True)),
        migrator.add_column("batch_server", "threads_now", IntegerField(default=0)),
    )
    db.execute_sql(RUNNING_INDEX)
    if not pg:
        return
    for sql in GRANTS:
        db.execute_sql(sql)
    with db.cursor() as cursor:
        cursor.execute(GUARD_SETTINGS)
    for table in SETTINGS_TABLES:
        db.execute_sql(f"DROP TRIGGER IF EXISTS batchtui_guard ON {table}")
        db.execute_sql(f"CREATE TRIGGER batchtui_guard BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION batchtui_guard_settings()")
