"""Who is acting: the operating-system user on SQLite, the database session on PostgreSQL.

"Batch jobs are run by using the security credentials of the user who
created the job." On SQLite the database file is private to its owner (mode
0600), so whoever can write it is that account, and BATCHTUI_USER or the
login name says which operator is at the keyboard. On a PostgreSQL database
shared by many people that would let anyone name any Run-by user, so there
the database decides: triggers (schema version 2, migrations/v2_pg_guards.py)
set Created by and Run by from ``current_user`` and refuse changes to a job
by anyone but its owner, a member of the ``batchtui_manager`` role or a
batch server (a member of ``batchtui_server``). The application asks the same session who it is, so
what the console and the command line check and show agrees with what the
database enforces.

A PostgreSQL superuser can switch the triggers off anyway; such a session
is trusted like root on a machine: it acts as BATCHTUI_USER or its login
name, and the configured managers apply.
"""

from __future__ import annotations

from peewee import PostgresqlDatabase

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
    db = m.database.obj
    if not isinstance(db, PostgresqlDatabase):
        return None
    session = getattr(db, "batchtui_session", None)
    if session is None:
        row = m.database.execute_sql(
            "SELECT current_user::text, r.rolsuper, "
            f"pg_has_role(current_user, '{MANAGER_ROLE}', 'MEMBER'), "
            f"pg_has_role(current_user, '{SERVER_ROLE}', 'MEMBER') "
            "FROM pg_roles r WHERE r.rolname = current_user").fetchone()
        session = Session(row[0], bool(row[1]), bool(row[2]), bool(row[3]))
        db.batchtui_session = session  # type: ignore[attr-defined]  # cached on the database object
    return session


def database_user() -> str | None:
    """current_user on PostgreSQL (unless a superuser); None where the OS user applies."""
    try:
        session = pg_session()
    except Exception:  # noqa: BLE001  (no database open yet, or it is away: the OS user applies)
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


def refused_by_database(exc: BaseException) -> UserError | None:
    """The guard triggers' refusal as the user's error (it names who may), or None."""
    text = str(exc)
    marker = "batchtui: "
    if marker in text and "may not" in text:
        return NotAllowed(text[text.index(marker) + len(marker):].splitlines()[0])
    return None
