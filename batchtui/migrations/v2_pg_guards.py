"""Schema version 2 (PostgreSQL only): the batchtui roles, their grants and the guard triggers.

On PostgreSQL the database, not the client, says who created a job and who
may change it (see identity.py for the runtime side): triggers set Created
by and Run by from ``current_user`` and refuse changes to a job by anyone
but its owner, a member of ``batchtui_manager`` or a batch server (a member
of ``batchtui_server``). Nothing happens on SQLite, whose file is private
to its owner.

Frozen: the roles, grants, functions and triggers exactly as batchtui up
to 5c99734 installed them (then in identity.install_guards), with the role
names and tables written out instead of taken from identity's constants and
the models, so that renaming one there cannot rewrite history. The function
bodies are kept to the byte: PostgreSQL stores them as written, and the
upgrade test compares them with those of a 5c99734 database. Roles are
cluster-wide: one made for another database is used as it is.
"""

from __future__ import annotations

from peewee import PostgresqlDatabase

#: The roles this version creates; identity.py's OPERATOR_ROLE, MANAGER_ROLE
#: and SERVER_ROLE name them at run time (a test checks they agree).
ROLES = ("batchtui_operator", "batchtui_manager", "batchtui_server")

CREATE_ROLES = """
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['batchtui_operator', 'batchtui_manager', 'batchtui_server'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                WHEN duplicate_object THEN NULL;  -- another database's migration made it
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'batchtui: the role % does not exist and % may not create it: '
                        'a database administrator runs CREATE ROLE % NOLOGIN', r, current_user, r;
            END;
        END IF;
    END LOOP;
END
$$
"""

# Whether the acting role may change a job whose owner is `owner`.
MAY_MANAGE = """
CREATE OR REPLACE FUNCTION batchtui_may_manage(owner text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT owner = current_user::text
        OR pg_has_role(current_user, 'batchtui_manager', 'MEMBER')
        OR pg_has_role(current_user, 'batchtui_server', 'MEMBER')
$$
"""

# batch_job: Created by and Run by are the inserting session's role and never
# change; only the owner, a manager or a batch server changes or deletes a job.
GUARD_JOB = """
CREATE OR REPLACE FUNCTION batchtui_guard_job() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    su boolean := COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false);
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NOT su THEN
            NEW.created_by := current_user;
            NEW.run_by := current_user;
        END IF;
        RETURN NEW;
    END IF;
    IF NOT batchtui_may_manage(OLD.created_by) THEN
        RAISE EXCEPTION 'batchtui: user % may not change batch job % (only its owner % or a batch job manager may)',
            current_user, OLD.id, OLD.created_by USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF NOT su THEN
        NEW.created_by := OLD.created_by;
        NEW.run_by := OLD.run_by;
    END IF;
    RETURN NEW;
END
$$
"""

# The rows that make up a job (its tasks, conditions, alert settings, runs,
# attempts and the alerts they raised) follow the job's owner; anyone may
# keep their own alert settings on any job and read or delete their own
# alerts. A row whose job is gone is being deleted (or unlinked) by the
# cascade of a job delete that was checked already. Batch servers and
# managers pass first, so the batch server's many status writes cost one
# role check each.
GUARD_PART = """
CREATE OR REPLACE FUNCTION batchtui_guard_part() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
    own boolean;
    jobs bigint[];
    job bigint;
    owner text;
BEGIN
    IF NOT (pg_has_role(current_user, 'batchtui_server', 'MEMBER')
            OR pg_has_role(current_user, 'batchtui_manager', 'MEMBER')) THEN
        own := TG_TABLE_NAME IN ('job_alert', 'alert')
            AND COALESCE(old_row->>'user', current_user::text) = current_user::text
            AND COALESCE(new_row->>'user', current_user::text) = current_user::text;
        jobs := batchtui_part_jobs(TG_TABLE_NAME, old_row, new_row);
        IF TG_TABLE_NAME = 'alert' AND cardinality(jobs) = 0 AND NOT own THEN
            RAISE EXCEPTION 'batchtui: user % may not change the alerts of user %',
                current_user, COALESCE(old_row->>'user', new_row->>'user') USING ERRCODE = 'insufficient_privilege';
        END IF;
        FOREACH job IN ARRAY jobs LOOP
            SELECT created_by INTO owner FROM batch_job WHERE id = job;
            CONTINUE WHEN owner IS NULL OR own OR batchtui_may_manage(owner);
            RAISE EXCEPTION 'batchtui: user % may not change batch job % (only its owner % or a batch job manager may)',
                current_user, job, owner USING ERRCODE = 'insufficient_privilege';
        END LOOP;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$
"""

# The job (or jobs, when an update moves a row) a row of a job's table belongs to.
PART_JOBS = """
CREATE OR REPLACE FUNCTION batchtui_part_jobs(tbl text, old_row jsonb, new_row jsonb)
RETURNS bigint[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    jobs bigint[] := '{}';
    row_ jsonb;
    job bigint;
BEGIN
    FOREACH row_ IN ARRAY ARRAY[old_row, new_row] LOOP
        CONTINUE WHEN row_ IS NULL;
        job := NULL;
        IF tbl IN ('batch_task', 'job_alert', 'job_run', 'alert') THEN
            job := (row_->>'job_id')::bigint;
        ELSIF tbl IN ('batch_constraint', 'task_attempt') THEN
            SELECT t.job_id INTO job FROM batch_task t WHERE t.id = (row_->>'task_id')::bigint;
        ELSIF tbl = 'run_task' THEN
            SELECT r.job_id INTO job FROM job_run r WHERE r.id = (row_->>'run_id')::bigint;
        END IF;
        IF job IS NOT NULL AND NOT job = ANY(jobs) THEN
            jobs := jobs || job;
        END IF;
    END LOOP;
    RETURN jobs;
END
$$
"""

PART_TABLES = ("batch_task", "batch_constraint", "job_alert", "job_run", "run_task", "task_attempt", "alert")

GRANTS = [
    ("GRANT SELECT, INSERT, UPDATE, DELETE ON company, batch_group, batch_group_server, batch_server, batch_job, "
     "batch_task, batch_constraint, job_alert, job_run, run_task, task_attempt, alert "
     "TO batchtui_operator, batchtui_manager, batchtui_server"),
    "GRANT SELECT ON batchtui_schema TO batchtui_operator, batchtui_manager, batchtui_server",
    # The sequences of the SERIAL keys (5c99734 asked pg_get_serial_sequence for each).
    ("GRANT USAGE, SELECT ON SEQUENCE batch_group_server_id_seq, batch_job_id_seq, batch_task_id_seq, "
     "batch_constraint_id_seq, job_alert_id_seq, job_run_id_seq, run_task_id_seq, task_attempt_id_seq, "
     "alert_id_seq TO batchtui_operator, batchtui_manager, batchtui_server"),
]


def apply(db, migrator) -> None:
    if not isinstance(db, PostgresqlDatabase):
        return

    def ddl(sql: str) -> None:
        # A cursor of its own without parameters: psycopg leaves the % of RAISE alone.
        with db.cursor() as cursor:
            cursor.execute(sql)

    ddl(CREATE_ROLES)
    for sql in GRANTS:
        db.execute_sql(sql)
    ddl(MAY_MANAGE)
    ddl(GUARD_JOB)
    ddl(PART_JOBS)
    ddl(GUARD_PART)
    db.execute_sql("DROP TRIGGER IF EXISTS batchtui_guard ON batch_job")
    db.execute_sql("CREATE TRIGGER batchtui_guard BEFORE INSERT OR UPDATE OR DELETE ON batch_job "
                   "FOR EACH ROW EXECUTE FUNCTION batchtui_guard_job()")
    for table in PART_TABLES:
        db.execute_sql(f"DROP TRIGGER IF EXISTS batchtui_guard ON {table}")
        db.execute_sql(f"CREATE TRIGGER batchtui_guard BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION batchtui_guard_part()")
