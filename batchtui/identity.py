"""Who is acting: the operating-system user on SQLite, the database session on PostgreSQL.

"Batch jobs are run by using the security credentials of the user who
created the job." On SQLite the database file is private to its owner (mode
0600), so whoever can write it is that account, and BATCHTUI_USER or the
login name says which operator is at the keyboard. On a PostgreSQL database
shared by many people that would let anyone name any Run-by user, so there
the database decides: triggers (migration 2, below) set Created by and Run
by from ``current_user`` and refuse changes to a job by anyone but its owner,
a member of the ``batchtui_manager`` role or a batch server (a member of
``batchtui_server``). The application asks the same session who it is, so
what the console and the command line check and show agrees with what the
database enforces.

A PostgreSQL superuser can switch the triggers off anyway; such a session
is trusted like root on a machine: it acts as BATCHTUI_USER or its login
name, and the configured managers apply.
"""

from __future__ import annotations

from peewee import AutoField

from . import models as m
from .errors import NotAllowed, UserError

OPERATOR_ROLE = "batchtui_operator"
MANAGER_ROLE = "batchtui_manager"
SERVER_ROLE = "batchtui_server"
ROLES = (OPERATOR_ROLE, MANAGER_ROLE, SERVER_ROLE)


class Session:
    """What PostgreSQL says about the connected role (read once per database)."""

    def __init__(self, user: str, superuser: bool, manager: bool, server: bool) -> None:
        self.user = user
        self.superuser = superuser
        self.manager = manager
        self.server = server


def pg_session() -> Session | None:
    """The PostgreSQL role of this process's database, or None on SQLite.

    The role comes from the URL and does not change while the process runs,
    so it is asked once per database object.
    """
    from .db import is_postgres

    db = m.database.obj
    if db is None or not is_postgres(db):
        return None
    session = getattr(db, "batchtui_session", None)
    if session is None:
        row = m.database.execute_sql(
            "SELECT current_user::text, r.rolsuper, "
            f"pg_has_role(current_user, '{MANAGER_ROLE}', 'MEMBER'), "
            f"pg_has_role(current_user, '{SERVER_ROLE}', 'MEMBER') "
            "FROM pg_roles r WHERE r.rolname = current_user").fetchone()
        session = Session(row[0], bool(row[1]), bool(row[2]), bool(row[3]))
        db.batchtui_session = session
    return session


def database_user() -> str | None:
    """current_user on PostgreSQL (unless a superuser); None where the OS user applies."""
    try:
        session = pg_session()
    except Exception:  # no database open yet, or it is away: the OS user applies
        return None
    if session is None or session.superuser:
        return None
    return session.user


def managers(configured: list[str]) -> list[str]:
    """The batch job managers that apply to this process's user.

    On PostgreSQL (not a superuser) that is the database role: the session's
    user if it is a member of batchtui_manager, nobody otherwise; the
    config file's list is not asked, since the database would refuse anyway.
    """
    session = pg_session()
    if session is None or session.superuser:
        return configured
    return [session.user] if session.manager else []


def check_may_serve() -> None:
    """A batch server on PostgreSQL must be a member of batchtui_server.

    It changes the status of everyone's jobs, which the database allows
    only to that role; an operator's console opens without its embedded
    server instead.
    """
    session = pg_session()
    if session is None or session.superuser or session.server:
        return
    raise NotAllowed(
        f"PostgreSQL role {session.user!r} may not run a batch server: it is not a member of "
        f"{SERVER_ROLE} (a database administrator grants it: GRANT {SERVER_ROLE} TO \"{session.user}\")"
    )


# -- migration 2: the roles, their grants and the guard triggers ----------------------

_CREATE_ROLES = """
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY[{roles}] LOOP
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
_MAY_MANAGE = f"""
CREATE OR REPLACE FUNCTION batchtui_may_manage(owner text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT owner = current_user::text
        OR pg_has_role(current_user, '{MANAGER_ROLE}', 'MEMBER')
        OR pg_has_role(current_user, '{SERVER_ROLE}', 'MEMBER')
$$
"""

# batch_job: Created by and Run by are the inserting session's role and never
# change; only the owner, a manager or a batch server changes or deletes a job.
_GUARD_JOB = """
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
_GUARD_PART = f"""
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
    IF NOT (pg_has_role(current_user, '{SERVER_ROLE}', 'MEMBER')
            OR pg_has_role(current_user, '{MANAGER_ROLE}', 'MEMBER')) THEN
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
_PART_JOBS = """
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


def install_guards(db) -> None:
    """Migration 2 on PostgreSQL: roles, grants, and the triggers above. Nothing on SQLite."""
    from .db import is_postgres

    if not is_postgres(db):
        return

    def ddl(sql: str) -> None:
        # A cursor of its own without parameters: psycopg leaves the % of RAISE alone.
        with db.cursor() as cursor:
            cursor.execute(sql)

    ddl(_CREATE_ROLES.replace("{roles}", ", ".join(f"'{r}'" for r in ROLES)))
    tables = ", ".join(model._meta.table_name for model in m.ALL_MODELS)
    roles = ", ".join(ROLES)
    db.execute_sql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {roles}")
    db.execute_sql(f"GRANT SELECT ON batchtui_schema TO {roles}")
    for model in m.ALL_MODELS:
        key = model._meta.primary_key
        if not isinstance(key, AutoField):
            continue
        sequence = db.execute_sql("SELECT pg_get_serial_sequence(%s, %s)",
                                  (model._meta.table_name, key.column_name)).fetchone()[0]
        if sequence:  # already quoted by PostgreSQL
            db.execute_sql(f"GRANT USAGE, SELECT ON SEQUENCE {sequence} TO {roles}")
    ddl(_MAY_MANAGE)
    ddl(_GUARD_JOB)
    ddl(_PART_JOBS)
    ddl(_GUARD_PART)
    db.execute_sql("DROP TRIGGER IF EXISTS batchtui_guard ON batch_job")
    db.execute_sql("CREATE TRIGGER batchtui_guard BEFORE INSERT OR UPDATE OR DELETE ON batch_job "
                   "FOR EACH ROW EXECUTE FUNCTION batchtui_guard_job()")
    for table in PART_TABLES:
        db.execute_sql(f"DROP TRIGGER IF EXISTS batchtui_guard ON {table}")
        db.execute_sql(f"CREATE TRIGGER batchtui_guard BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION batchtui_guard_part()")


def refused_by_database(exc: BaseException) -> UserError | None:
    """The guard triggers' refusal as the user's error (it names who may), or None."""
    text = str(exc)
    marker = "batchtui: "
    if marker in text and "may not" in text:
        return NotAllowed(text[text.index(marker) + len(marker):].splitlines()[0])
    return None
