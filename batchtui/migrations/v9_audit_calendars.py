"""Schema version 9: the audit trail, calendars of closed days, and indexes for `job list` (issue 14).

- ``job_audit``: one row per change an operator makes to a job (who, when,
  action, field, old and new value, JSON text). ``job_id`` is a plain
  integer, not a foreign key: the trail is kept after the job is deleted.
- ``closed_calendar``: a named calendar of closed days (dates, weekends,
  the public holidays of a country and subdivision) that a recurrence may
  name.
- ``batch_job (created_by, id)`` and ``batch_job (company_id, id)``: `job
  list --user U --limit N` and `--company C` read one index range.

On PostgreSQL the audit trail is insert-only: operators, managers and batch
servers get SELECT and INSERT, no UPDATE or DELETE, and a guard trigger sets
the row's user and time from the session (``current_user``, the
transaction's time), refuses an entry for a job that does not exist or that
the role may not manage (but a user's own alert settings), and refuses every
UPDATE and DELETE but a superuser's. Calendars are setup data: the step 7
guard (``batchtui_guard_settings``) lets only batch job managers change them.

Frozen: fields and values written out.
"""

from __future__ import annotations

from peewee import PostgresqlDatabase

SQLITE_TABLES = [
    ('CREATE TABLE IF NOT EXISTS "job_audit" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, '
     '"job_id" INTEGER NOT NULL, "at" DATETIME NOT NULL, "user" VARCHAR(80) NOT NULL, '
     '"action" VARCHAR(20) NOT NULL, "field" VARCHAR(300), "old" TEXT, "new" TEXT)'),
    ('CREATE TABLE IF NOT EXISTS "closed_calendar" ("name" VARCHAR(40) NOT NULL PRIMARY KEY, '
     '"description" VARCHAR(200) NOT NULL, "dates" TEXT NOT NULL, "weekends" INTEGER NOT NULL, '
     '"country" VARCHAR(8), "subdiv" VARCHAR(16))'),
]

POSTGRES_TABLES = [
    ('CREATE TABLE IF NOT EXISTS "job_audit" ("id" SERIAL NOT NULL PRIMARY KEY, '
     '"job_id" INTEGER NOT NULL, "at" TIMESTAMP NOT NULL, "user" VARCHAR(80) NOT NULL, '
     '"action" VARCHAR(20) NOT NULL, "field" VARCHAR(300), "old" TEXT, "new" TEXT)'),
    ('CREATE TABLE IF NOT EXISTS "closed_calendar" ("name" VARCHAR(40) NOT NULL PRIMARY KEY, '
     '"description" VARCHAR(200) NOT NULL, "dates" TEXT NOT NULL, "weekends" BOOLEAN NOT NULL, '
     '"country" VARCHAR(8), "subdiv" VARCHAR(16))'),
]

INDEXES = [
    'CREATE INDEX IF NOT EXISTS "job_audit_job_id_id" ON "job_audit" ("job_id", "id")',
    'CREATE INDEX IF NOT EXISTS "batch_job_created_by_id" ON "batch_job" ("created_by", "id")',
    'CREATE INDEX IF NOT EXISTS "batch_job_company_id_id" ON "batch_job" ("company_id", "id")',
]

# The audit trail: written by the session it names, at the time it says, never changed.
GUARD_AUDIT = """
CREATE OR REPLACE FUNCTION batchtui_guard_audit() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    su boolean := COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false);
    owner text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF su THEN
            IF TG_OP = 'DELETE' THEN
                RETURN OLD;
            END IF;
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'batchtui: user % may not change or delete the audit trail', current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF su THEN
        RETURN NEW;
    END IF;
    NEW."user" := current_user;
    NEW.at := (now() AT TIME ZONE 'UTC');
    SELECT created_by INTO owner FROM batch_job WHERE id = NEW.job_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'batchtui: user % may not write an audit entry for batch job %, which does not exist',
            current_user, NEW.job_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT (batchtui_may_manage(owner) OR (NEW.action = 'alerts' AND NEW.field = current_user::text)) THEN
        RAISE EXCEPTION 'batchtui: user % may not change batch job % (only its owner % or a batch job manager may)',
            current_user, NEW.job_id, owner USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""

GRANTS = [
    "GRANT SELECT, INSERT ON job_audit TO batchtui_operator, batchtui_manager, batchtui_server",
    "GRANT USAGE, SELECT ON SEQUENCE job_audit_id_seq TO batchtui_operator, batchtui_manager, batchtui_server",
    ("GRANT SELECT, INSERT, UPDATE, DELETE ON closed_calendar "
     "TO batchtui_operator, batchtui_manager, batchtui_server"),
]


def apply(db, migrator) -> None:
    pg = isinstance(db, PostgresqlDatabase)
    for sql in POSTGRES_TABLES if pg else SQLITE_TABLES:
        db.execute_sql(sql)
    for sql in INDEXES:
        db.execute_sql(sql)
    if not pg:
        return
    for sql in GRANTS:
        db.execute_sql(sql)
    with db.cursor() as cursor:
        cursor.execute(GUARD_AUDIT)
    db.execute_sql("DROP TRIGGER IF EXISTS batchtui_guard ON job_audit")
    db.execute_sql("CREATE TRIGGER batchtui_guard BEFORE INSERT OR UPDATE OR DELETE ON job_audit "
                   "FOR EACH ROW EXECUTE FUNCTION batchtui_guard_audit()")
    db.execute_sql("DROP TRIGGER IF EXISTS batchtui_guard ON closed_calendar")
    db.execute_sql("CREATE TRIGGER batchtui_guard BEFORE INSERT OR UPDATE OR DELETE ON closed_calendar "
                   "FOR EACH ROW EXECUTE FUNCTION batchtui_guard_settings()")
