"""Schema version 5 (PostgreSQL only): guards on the batch servers' rows and the batch groups.

Version 2 guarded the jobs and what belongs to them, but left
``batch_server``, ``batch_group`` and ``batch_group_server`` open to every
batchtui role, and each of them stops everyone's work: an operator who maps
the Empty batch group to a server that does not exist stops every task of
that group, and one who sets a live server's heartbeat into the past makes
another server declare it dead and start its running tasks again. From this
version:

- ``batch_server`` (registration, heartbeats, stops, a dead server declared
  stopped) is written by batch servers only: members of ``batchtui_server``;
- ``batch_group`` and ``batch_group_server`` are changed by batch job
  managers only: members of ``batchtui_manager`` (``batchtui group add`` and
  the console's Batch groups form check the same before they write). A
  batch server may also add rows there, never change or delete them: the
  groups it is started with (``batchtui server --groups``) are created and
  mapped to it when it registers, as before.

A trigger on each table says so by name (``batchtui: user ... may not ...``,
SQLSTATE 42501, the command line's exit 2), whatever the grants, and the
grants of version 2 are narrowed to match, so that a hand-written statement
is refused before it reaches the trigger. Superusers are members of every
role and pass. Nothing happens on SQLite, where the file's owner is the only
writer and the command line and the console check the acting user.

Frozen: written out in full, role and table names included, like version 2.
"""

from __future__ import annotations

from peewee import PostgresqlDatabase

GUARD_SERVER = """
CREATE OR REPLACE FUNCTION batchtui_guard_server() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_has_role(current_user, 'batchtui_server', 'MEMBER') THEN
        RAISE EXCEPTION 'batchtui: user % may not change the rows or heartbeats of batch servers '
            '(only a batch server, a member of batchtui_server, may)', current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$
"""

# Managers change groups and their servers; a batch server only adds the
# groups it was started with (EngineStore.register).
GUARD_GROUP = """
CREATE OR REPLACE FUNCTION batchtui_guard_group() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (pg_has_role(current_user, 'batchtui_manager', 'MEMBER')
            OR (TG_OP = 'INSERT' AND pg_has_role(current_user, 'batchtui_server', 'MEMBER'))) THEN
        RAISE EXCEPTION 'batchtui: user % may not change batch groups or the servers that serve them '
            '(only a batch job manager, a member of batchtui_manager, may)', current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$
"""

GRANTS = [
    "REVOKE INSERT, UPDATE, DELETE ON batch_server FROM batchtui_operator, batchtui_manager",
    "REVOKE INSERT, UPDATE, DELETE ON batch_group, batch_group_server FROM batchtui_operator",
    "REVOKE UPDATE, DELETE ON batch_group, batch_group_server FROM batchtui_server",
]

TRIGGERS = (("batch_server", "batchtui_guard_server"), ("batch_group", "batchtui_guard_group"),
            ("batch_group_server", "batchtui_guard_group"))


def apply(db, migrator) -> None:
    if not isinstance(db, PostgresqlDatabase):
        return

    def ddl(sql: str) -> None:
        # A cursor of its own without parameters: psycopg leaves the % of RAISE alone.
        with db.cursor() as cursor:
            cursor.execute(sql)

    for sql in GRANTS:
        db.execute_sql(sql)
    ddl(GUARD_SERVER)
    ddl(GUARD_GROUP)
    for table, function in TRIGGERS:
        db.execute_sql(f"DROP TRIGGER IF EXISTS batchtui_guard ON {table}")
        db.execute_sql(f"CREATE TRIGGER batchtui_guard BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION {function}()")
