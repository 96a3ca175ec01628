"""Schema version 1: the tables, their indexes and two seed rows.

Frozen: this is the DDL that ``db.create_tables(models.ALL_MODELS)`` and the
raw index statements of batchtui up to 5c99734 ran, statement for statement
and byte for byte as peewee generated it for each dialect (taken from
peewee's query log of that release). It must not follow the models: a
database made today has to be the one an upgrade of a 5c99734 database is,
and both go on from here through the same later steps. SQLite keeps each
CREATE statement's text in sqlite_master, so even the spelling matters:
playhouse.migrate's SQLite table rebuilds parse it.

Change the schema with a new step (see the package docstring), never here.
"""

from __future__ import annotations

from peewee import PostgresqlDatabase

# -- SQLite: the models' tables, in the order create_tables sorted them -------------------

SQLITE_TABLES = [
    ('CREATE TABLE IF NOT EXISTS "company" ("id" VARCHAR(8) NOT NULL PRIMARY KEY, '
     '"name" VARCHAR(255) NOT NULL)'),
    ('CREATE TABLE IF NOT EXISTS "batch_job" ("id" INTEGER NOT NULL PRIMARY KEY, '
     '"description" VARCHAR(200) NOT NULL, "company_id" VARCHAR(8) NOT NULL, '
     '"scheduled_start" DATETIME NOT NULL, "time_zone" VARCHAR(64) NOT NULL, "status" INTEGER NOT NULL, '
     '"priority" INTEGER NOT NULL, "recurrence" TEXT, "recurrence_text" VARCHAR(300) NOT NULL, '
     '"created_by" VARCHAR(80) NOT NULL, "run_by" VARCHAR(80) NOT NULL, "created" DATETIME NOT NULL, '
     '"modified" DATETIME NOT NULL, "version" INTEGER NOT NULL, "run_count" INTEGER NOT NULL, '
     '"current_run" INTEGER, FOREIGN KEY ("company_id") REFERENCES "company" ("id") ON DELETE RESTRICT)'),
    'CREATE INDEX IF NOT EXISTS "batch_job_company_id" ON "batch_job" ("company_id")',
    ('CREATE INDEX IF NOT EXISTS "batch_job_status_scheduled_start" ON "batch_job" ("status", '
     '"scheduled_start")'),
    ('CREATE TABLE IF NOT EXISTS "job_run" ("id" INTEGER NOT NULL PRIMARY KEY, "job_id" INTEGER NOT NULL, '
     '"run_no" INTEGER NOT NULL, "scheduled" DATETIME NOT NULL, "started" DATETIME NOT NULL, '
     '"ended" DATETIME, "status" INTEGER NOT NULL, "server" VARCHAR(80) NOT NULL, '
     'FOREIGN KEY ("job_id") REFERENCES "batch_job" ("id") ON DELETE CASCADE)'),
    'CREATE INDEX IF NOT EXISTS "job_run_ended" ON "job_run" ("ended")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "job_run_job_id_run_no" ON "job_run" ("job_id", "run_no")',
    ('CREATE TABLE IF NOT EXISTS "alert" ("id" INTEGER NOT NULL PRIMARY KEY, "user" VARCHAR(80) NOT NULL, '
     '"job_id" INTEGER, "run_id" INTEGER, "event" VARCHAR(16) NOT NULL, "message" TEXT NOT NULL, '
     '"created" DATETIME NOT NULL, "read" INTEGER NOT NULL, "popup" INTEGER NOT NULL, '
     '"email" INTEGER NOT NULL, "mailed" INTEGER NOT NULL, '
     'FOREIGN KEY ("job_id") REFERENCES "batch_job" ("id") ON DELETE SET NULL, '
     'FOREIGN KEY ("run_id") REFERENCES "job_run" ("id") ON DELETE SET NULL)'),
    'CREATE INDEX IF NOT EXISTS "alert_job_id" ON "alert" ("job_id")',
    'CREATE INDEX IF NOT EXISTS "alert_run_id" ON "alert" ("run_id")',
    'CREATE INDEX IF NOT EXISTS "alert_user_read" ON "alert" ("user", "read")',
    ('CREATE TABLE IF NOT EXISTS "batch_task" ("id" INTEGER NOT NULL PRIMARY KEY, '
     '"job_id" INTEGER NOT NULL, "key" VARCHAR(200) NOT NULL, "description" VARCHAR(200) NOT NULL, '
     '"company_id" VARCHAR(8) NOT NULL, "class_name" VARCHAR(200) NOT NULL, "params" TEXT NOT NULL, '
     '"batch_group" VARCHAR(40) NOT NULL, "status" INTEGER NOT NULL, "ignore_failure" INTEGER NOT NULL, '
     '"max_retries" INTEGER NOT NULL, "retries_used" INTEGER NOT NULL, "condition_type" INTEGER NOT NULL, '
     '"not_before" DATETIME, "server" VARCHAR(80), "attempt" INTEGER, "attempts" INTEGER NOT NULL, '
     '"version" INTEGER NOT NULL, "job_priority" INTEGER NOT NULL, "job_start" DATETIME, '
     'FOREIGN KEY ("job_id") REFERENCES "batch_job" ("id") ON DELETE CASCADE, '
     'FOREIGN KEY ("company_id") REFERENCES "company" ("id") ON DELETE RESTRICT)'),
    'CREATE INDEX IF NOT EXISTS "batch_task_company_id" ON "batch_task" ("company_id")',
    'CREATE INDEX IF NOT EXISTS "batch_task_job_id_status" ON "batch_task" ("job_id", "status")',
    ('CREATE TABLE IF NOT EXISTS "batch_constraint" ("id" INTEGER NOT NULL PRIMARY KEY, '
     '"task_id" INTEGER NOT NULL, "parent_id" INTEGER NOT NULL, "expected" INTEGER NOT NULL, '
     'FOREIGN KEY ("task_id") REFERENCES "batch_task" ("id") ON DELETE CASCADE, '
     'FOREIGN KEY ("parent_id") REFERENCES "batch_task" ("id") ON DELETE CASCADE)'),
    'CREATE INDEX IF NOT EXISTS "batch_constraint_parent_id" ON "batch_constraint" ("parent_id")',
    ('CREATE UNIQUE INDEX IF NOT EXISTS "batch_constraint_task_id_parent_id" ON "batch_constraint" ("task_id", '
     '"parent_id")'),
    ('CREATE TABLE IF NOT EXISTS "batch_group" ("name" VARCHAR(40) NOT NULL PRIMARY KEY, '
     '"description" VARCHAR(255) NOT NULL)'),
    ('CREATE TABLE IF NOT EXISTS "batch_group_server" ("id" INTEGER NOT NULL PRIMARY KEY, '
     '"group_name" VARCHAR(40) NOT NULL, "server" VARCHAR(80) NOT NULL, '
     'FOREIGN KEY ("group_name") REFERENCES "batch_group" ("name") ON DELETE CASCADE)'),
    'CREATE INDEX IF NOT EXISTS "batch_group_server_group_name" ON "batch_group_server" ("group_name")',
    ('CREATE UNIQUE INDEX IF NOT EXISTS "batch_group_server_group_name_server" '
     'ON "batch_group_server" ("group_name", "server")'),
    ('CREATE TABLE IF NOT EXISTS "batch_server" ("name" VARCHAR(80) NOT NULL PRIMARY KEY, '
     '"host" VARCHAR(255) NOT NULL, "pid" INTEGER NOT NULL, "threads" INTEGER NOT NULL, "started" DATETIME, '
     '"heartbeat" DATETIME, "stopped" DATETIME)'),
    ('CREATE TABLE IF NOT EXISTS "job_alert" ("id" INTEGER NOT NULL PRIMARY KEY, "job_id" INTEGER NOT NULL, '
     '"user" VARCHAR(80) NOT NULL, "ended" INTEGER NOT NULL, "error" INTEGER NOT NULL, '
     '"canceled" INTEGER NOT NULL, "popup" INTEGER NOT NULL, "email" INTEGER NOT NULL, '
     'FOREIGN KEY ("job_id") REFERENCES "batch_job" ("id") ON DELETE CASCADE)'),
    'CREATE UNIQUE INDEX IF NOT EXISTS "job_alert_job_id_user" ON "job_alert" ("job_id", "user")',
    ('CREATE TABLE IF NOT EXISTS "run_task" ("id" INTEGER NOT NULL PRIMARY KEY, "run_id" INTEGER NOT NULL, '
     '"task_id" INTEGER NOT NULL, "status" INTEGER NOT NULL, "retries_used" INTEGER NOT NULL, '
     'FOREIGN KEY ("run_id") REFERENCES "job_run" ("id") ON DELETE CASCADE, '
     'FOREIGN KEY ("task_id") REFERENCES "batch_task" ("id") ON DELETE CASCADE)'),
    'CREATE INDEX IF NOT EXISTS "run_task_task_id" ON "run_task" ("task_id")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "run_task_run_id_task_id" ON "run_task" ("run_id", "task_id")',
    ('CREATE TABLE IF NOT EXISTS "task_attempt" ("id" INTEGER NOT NULL PRIMARY KEY, '
     '"run_id" INTEGER NOT NULL, "task_id" INTEGER NOT NULL, "attempt" INTEGER NOT NULL, '
     '"status" INTEGER NOT NULL, "started" DATETIME NOT NULL, "ended" DATETIME, '
     '"server" VARCHAR(80) NOT NULL, "log" TEXT NOT NULL, "progress" REAL, "progress_text" VARCHAR(200), '
     'FOREIGN KEY ("run_id") REFERENCES "job_run" ("id") ON DELETE CASCADE, '
     'FOREIGN KEY ("task_id") REFERENCES "batch_task" ("id") ON DELETE CASCADE)'),
    'CREATE INDEX IF NOT EXISTS "task_attempt_task_id" ON "task_attempt" ("task_id")',
    ('CREATE INDEX IF NOT EXISTS "task_attempt_run_id_task_id_attempt" ON "task_attempt" ("run_id", '
     '"task_id", "attempt")'),
]

# -- PostgreSQL: the same tables (SERIAL keys, TIMESTAMP times, BOOLEAN flags) -------------

POSTGRES_TABLES = [
    ('CREATE TABLE IF NOT EXISTS "company" ("id" VARCHAR(8) NOT NULL PRIMARY KEY, '
     '"name" VARCHAR(255) NOT NULL)'),
    ('CREATE TABLE IF NOT EXISTS "batch_job" ("id" SERIAL NOT NULL PRIMARY KEY, '
     '"description" VARCHAR(200) NOT NULL, "company_id" VARCHAR(8) NOT NULL, '
     '"scheduled_start" TIMESTAMP NOT NULL, "time_zone" VARCHAR(64) NOT NULL, "status" INTEGER NOT NULL, '
     '"priority" INTEGER NOT NULL, "recurrence" TEXT, "recurrence_text" VARCHAR(300) NOT NULL, '
     '"created_by" VARCHAR(80) NOT NULL, "run_by" VARCHAR(80) NOT NULL, "created" TIMESTAMP NOT NULL, '
     '"modified" TIMESTAMP NOT NULL, "version" INTEGER NOT NULL, "run_count" INTEGER NOT NULL, '
     '"current_run" INTEGER, FOREIGN KEY ("company_id") REFERENCES "company" ("id") ON DELETE RESTRICT)'),
    'CREATE INDEX IF NOT EXISTS "batch_job_company_id" ON "batch_job" ("company_id")',
    ('CREATE INDEX IF NOT EXISTS "batch_job_status_scheduled_start" ON "batch_job" ("status", '
     '"scheduled_start")'),
    ('CREATE TABLE IF NOT EXISTS "job_run" ("id" SERIAL NOT NULL PRIMARY KEY, "job_id" INTEGER NOT NULL, '
     '"run_no" INTEGER NOT NULL, "scheduled" TIMESTAMP NOT NULL, "started" TIMESTAMP NOT NULL, '
     '"ended" TIMESTAMP, "status" INTEGER NOT NULL, "server" VARCHAR(80) NOT NULL, '
     'FOREIGN KEY ("job_id") REFERENCES "batch_job" ("id") ON DELETE CASCADE)'),
    'CREATE INDEX IF NOT EXISTS "job_run_ended" ON "job_run" ("ended")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "job_run_job_id_run_no" ON "job_run" ("job_id", "run_no")',
    ('CREATE TABLE IF NOT EXISTS "alert" ("id" SERIAL NOT NULL PRIMARY KEY, "user" VARCHAR(80) NOT NULL, '
     '"job_id" INTEGER, "run_id" INTEGER, "event" VARCHAR(16) NOT NULL, "message" TEXT NOT NULL, '
     '"created" TIMESTAMP NOT NULL, "read" BOOLEAN NOT NULL, "popup" BOOLEAN NOT NULL, '
     '"email" BOOLEAN NOT NULL, "mailed" BOOLEAN NOT NULL, '
     'FOREIGN KEY ("job_id") REFERENCES "batch_job" ("id") ON DELETE SET NULL, '
     'FOREIGN KEY ("run_id") REFERENCES "job_run" ("id") ON DELETE SET NULL)'),
    'CREATE INDEX IF NOT EXISTS "alert_job_id" ON "alert" ("job_id")',
    'CREATE INDEX IF NOT EXISTS "alert_run_id" ON "alert" ("run_id")',
    'CREATE INDEX IF NOT EXISTS "alert_user_read" ON "alert" ("user", "read")',
    ('CREATE TABLE IF NOT EXISTS "batch_task" ("id" SERIAL NOT NULL PRIMARY KEY, "job_id" INTEGER NOT NULL, '
     '"key" VARCHAR(200) NOT NULL, "description" VARCHAR(200) NOT NULL, "company_id" VARCHAR(8) NOT NULL, '
     '"class_name" VARCHAR(200) NOT NULL, "params" TEXT NOT NULL, "batch_group" VARCHAR(40) NOT NULL, '
     '"status" INTEGER NOT NULL, "ignore_failure" BOOLEAN NOT NULL, "max_retries" INTEGER NOT NULL, '
     '"retries_used" INTEGER NOT NULL, "condition_type" INTEGER NOT NULL, "not_before" TIMESTAMP, '
     '"server" VARCHAR(80), "attempt" INTEGER, "attempts" INTEGER NOT NULL, "version" INTEGER NOT NULL, '
     '"job_priority" INTEGER NOT NULL, "job_start" TIMESTAMP, '
     'FOREIGN KEY ("job_id") REFERENCES "batch_job" ("id") ON DELETE CASCADE, '
     'FOREIGN KEY ("company_id") REFERENCES "company" ("id") ON DELETE RESTRICT)'),
    'CREATE INDEX IF NOT EXISTS "batch_task_company_id" ON "batch_task" ("company_id")',
    'CREATE INDEX IF NOT EXISTS "batch_task_job_id_status" ON "batch_task" ("job_id", "status")',
    ('CREATE TABLE IF NOT EXISTS "batch_constraint" ("id" SERIAL NOT NULL PRIMARY KEY, '
     '"task_id" INTEGER NOT NULL, "parent_id" INTEGER NOT NULL, "expected" INTEGER NOT NULL, '
     'FOREIGN KEY ("task_id") REFERENCES "batch_task" ("id") ON DELETE CASCADE, '
     'FOREIGN KEY ("parent_id") REFERENCES "batch_task" ("id") ON DELETE CASCADE)'),
    'CREATE INDEX IF NOT EXISTS "batch_constraint_parent_id" ON "batch_constraint" ("parent_id")',
    ('CREATE UNIQUE INDEX IF NOT EXISTS "batch_constraint_task_id_parent_id" ON "batch_constraint" ("task_id", '
     '"parent_id")'),
    ('CREATE TABLE IF NOT EXISTS "batch_group" ("name" VARCHAR(40) NOT NULL PRIMARY KEY, '
     '"description" VARCHAR(255) NOT NULL)'),
    ('CREATE TABLE IF NOT EXISTS "batch_group_server" ("id" SERIAL NOT NULL PRIMARY KEY, '
     '"group_name" VARCHAR(40) NOT NULL, "server" VARCHAR(80) NOT NULL, '
     'FOREIGN KEY ("group_name") REFERENCES "batch_group" ("name") ON DELETE CASCADE)'),
    'CREATE INDEX IF NOT EXISTS "batch_group_server_group_name" ON "batch_group_server" ("group_name")',
    ('CREATE UNIQUE INDEX IF NOT EXISTS "batch_group_server_group_name_server" '
     'ON "batch_group_server" ("group_name", "server")'),
    ('CREATE TABLE IF NOT EXISTS "batch_server" ("name" VARCHAR(80) NOT NULL PRIMARY KEY, '
     '"host" VARCHAR(255) NOT NULL, "pid" INTEGER NOT NULL, "threads" INTEGER NOT NULL, '
     '"started" TIMESTAMP, "heartbeat" TIMESTAMP, "stopped" TIMESTAMP)'),
    ('CREATE TABLE IF NOT EXISTS "job_alert" ("id" SERIAL NOT NULL PRIMARY KEY, "job_id" INTEGER NOT NULL, '
     '"user" VARCHAR(80) NOT NULL, "ended" BOOLEAN NOT NULL, "error" BOOLEAN NOT NULL, '
     '"canceled" BOOLEAN NOT NULL, "popup" BOOLEAN NOT NULL, "email" BOOLEAN NOT NULL, '
     'FOREIGN KEY ("job_id") REFERENCES "batch_job" ("id") ON DELETE CASCADE)'),
    'CREATE UNIQUE INDEX IF NOT EXISTS "job_alert_job_id_user" ON "job_alert" ("job_id", "user")',
    ('CREATE TABLE IF NOT EXISTS "run_task" ("id" SERIAL NOT NULL PRIMARY KEY, "run_id" INTEGER NOT NULL, '
     '"task_id" INTEGER NOT NULL, "status" INTEGER NOT NULL, "retries_used" INTEGER NOT NULL, '
     'FOREIGN KEY ("run_id") REFERENCES "job_run" ("id") ON DELETE CASCADE, '
     'FOREIGN KEY ("task_id") REFERENCES "batch_task" ("id") ON DELETE CASCADE)'),
    'CREATE INDEX IF NOT EXISTS "run_task_task_id" ON "run_task" ("task_id")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "run_task_run_id_task_id" ON "run_task" ("run_id", "task_id")',
    ('CREATE TABLE IF NOT EXISTS "task_attempt" ("id" SERIAL NOT NULL PRIMARY KEY, '
     '"run_id" INTEGER NOT NULL, "task_id" INTEGER NOT NULL, "attempt" INTEGER NOT NULL, '
     '"status" INTEGER NOT NULL, "started" TIMESTAMP NOT NULL, "ended" TIMESTAMP, '
     '"server" VARCHAR(80) NOT NULL, "log" TEXT NOT NULL, "progress" REAL, "progress_text" VARCHAR(200), '
     'FOREIGN KEY ("run_id") REFERENCES "job_run" ("id") ON DELETE CASCADE, '
     'FOREIGN KEY ("task_id") REFERENCES "batch_task" ("id") ON DELETE CASCADE)'),
    'CREATE INDEX IF NOT EXISTS "task_attempt_task_id" ON "task_attempt" ("task_id")',
    ('CREATE INDEX IF NOT EXISTS "task_attempt_run_id_task_id_attempt" ON "task_attempt" ("run_id", '
     '"task_id", "attempt")'),
]

# -- Both dialects: indexes the models could not declare ------------------------------------
INDEXES = [
    # The batch server's claim order: Ready tasks (status 5) by job priority
    # (highest first), job start, task ID. A descending column needs raw DDL.
    # Partial indexes hold only the rows the batch server looks for, so most
    # status changes of a task do not touch them.
    ('CREATE INDEX IF NOT EXISTS batch_task_claim_order ON batch_task '
     '(job_priority DESC, job_start, id) WHERE status = 5'),
    'CREATE INDEX IF NOT EXISTS batch_task_retry ON batch_task (not_before) WHERE not_before IS NOT NULL',
    # The Batch jobs grid pages by keyset on (sort column, id): one index per
    # column an operator sorts by. Status is left out on purpose: it changes
    # with every run, and the grid's status filter uses the (status, start) one.
    'CREATE INDEX IF NOT EXISTS batch_job_by_description ON batch_job (description, id)',
    'CREATE INDEX IF NOT EXISTS batch_job_by_scheduled_start ON batch_job (scheduled_start, id)',
    'CREATE INDEX IF NOT EXISTS batch_job_by_recurrence_text ON batch_job (recurrence_text, id)',
    'CREATE INDEX IF NOT EXISTS batch_job_by_created_by ON batch_job (created_by, id)',
    'CREATE INDEX IF NOT EXISTS batch_job_by_priority ON batch_job (priority, id)',
]

# The Empty batch group (blank name) and the default company, as get_or_create made them.
SEED = [
    "INSERT INTO batch_group (name, description) VALUES ('', 'Empty batch group')",
    "INSERT INTO company (id, name) VALUES ('DAT', 'Default company')",
]


def apply(db, migrator) -> None:
    tables = POSTGRES_TABLES if isinstance(db, PostgresqlDatabase) else SQLITE_TABLES
    for sql in tables + INDEXES + SEED:
        db.execute_sql(sql)
