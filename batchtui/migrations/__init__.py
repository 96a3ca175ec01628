"""The schema's history: every database, new or upgraded, is made by the same frozen steps.

A new database runs steps 1, 2, 3, ...; one made by an older batchtui runs the
steps it has not had. Both must end with the same tables, columns and
indexes, so no step may follow the models: ``models.py`` describes the schema
the code expects *now*, and changes; a step is the DDL that was run *then*,
and never changes once released. Step 1 is the literal DDL that
``create_tables(models)`` produced up to 5c99734, not a call of it: the
first column added to a model would otherwise give new databases the column
in their CREATE TABLE while upgraded ones got it from a later step, and the
two would drift apart for good.

The version is the single row of ``batchtui_schema``. ``migrate_schema``
writes nothing when it is current (an operator's PostgreSQL role, which may
not create tables, opens the database all the same) and refuses a database
newer than this batchtui.

Each step is ``apply(db, migrator)``: ``db`` the peewee database (SQLite or
PostgreSQL), ``migrator`` a ``playhouse.migrate`` migrator for it
(``SchemaMigrator.from_database(db)``: ``SqliteMigrator`` or
``PostgresqlMigrator``; peewee's psycopg 3 connections are plain
``PostgresqlDatabase`` objects). The pending steps run in one transaction
(SQLite: BEGIN IMMEDIATE, so concurrent processes queue; PostgreSQL: under
an advisory lock, DDL being transactional there), so a failed upgrade
leaves the database as it was.

On SQLite, foreign keys are switched off while the steps run: playhouse's
table rebuilds (drop_column on old SQLite, add_not_null, alter_column_type,
...) copy a table, DROP the original and rename the copy, and with foreign
keys on that DROP would delete every child row through ON DELETE CASCADE.
``PRAGMA foreign_key_check`` must then find nothing before the commit,
SQLite's documented procedure for such changes.

Adding step 4
-------------

1. A new module ``v4_<what>.py`` beside the others: a docstring saying
   why, and ``apply(db, migrator)``. Use ``playhouse.migrate`` for tables
   and columns. Write fields and values out in full: never import
   ``models`` or take a status from ``vocabulary`` (the step must mean
   tomorrow what it means today)::

       \"\"\"Schema version 4: a time limit per job, after which the batch server cancels it.\"\"\"

       from peewee import IntegerField
       from playhouse.migrate import migrate


       def apply(db, migrator) -> None:
           migrate(
               migrator.add_column("batch_job", "timeout", IntegerField(null=True)),
               migrator.add_index("batch_job", ("timeout",), False),
           )

   A NOT NULL column needs a default (``IntegerField(default=0)``): the
   rows already there get it. Raw SQL (``db.execute_sql``) is fine where
   playhouse has no operation, e.g. a partial index; branch on
   ``isinstance(db, PostgresqlDatabase)`` where the dialects differ. On
   PostgreSQL a new table needs the grants of step 2 (and its guard
   trigger, if its rows belong to a job); a new sequence its grant too.
   On SQLite a new table's integer id is ``"id" INTEGER NOT NULL PRIMARY
   KEY AUTOINCREMENT`` (step 6: an id is never given twice), as
   ``models.IdField`` declares it.
2. Append ``(4, v4_<what>.apply)`` to ``MIGRATIONS``.
3. Change ``models.py`` to match (``timeout = IntegerField(null=True)``).
4. tests/test_migrations.py then checks that a fresh database and an
   upgraded 5c99734 one are equal and that the models match them; it fails
   when a model changes without a step, or a step without the model.

Never edit a released step: a database that already ran it would not run
it again. Fix a mistake with a later step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext

from peewee import Database, PostgresqlDatabase
from playhouse.migrate import SchemaMigrator

from ..errors import UserError
from . import (
    v1_tables,
    v2_pg_guards,
    v3_due_index,
    v4_fencing,
    v5_pg_server_guards,
    v6_ids_runs,
    v7_scheduling_controls,
    v8_alert_delivery,
    v9_audit_calendars,
    v10_beyond_erp,
    v11_pg_guard_when,
    v12_claimed_ahead,
    v13_run_ended_index,
)

Step = Callable[[Database, SchemaMigrator], None]

MIGRATIONS: list[tuple[int, Step]] = [
    (1, v1_tables.apply),
    (2, v2_pg_guards.apply),
    (3, v3_due_index.apply),
    (4, v4_fencing.apply),
    (5, v5_pg_server_guards.apply),
    (6, v6_ids_runs.apply),
    (7, v7_scheduling_controls.apply),
    (8, v8_alert_delivery.apply),
    (9, v9_audit_calendars.apply),
    (10, v10_beyond_erp.apply),
    (11, v11_pg_guard_when.apply),
    (12, v12_claimed_ahead.apply),
    (13, v13_run_ended_index.apply),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]

#: Serialises migrations of one PostgreSQL database by several processes
#: starting at once (CREATE TABLE IF NOT EXISTS races on the catalogs).
ADVISORY_LOCK = 7262001


def migrate_schema(db: Database, steps: Sequence[tuple[int, Step]] = MIGRATIONS) -> None:
    """Bring the schema to the last version of steps; safe when several processes start at once.

    steps is MIGRATIONS but for tests, which try a step that is not (yet) part of the history.
    """
    target = steps[-1][0]
    pg = isinstance(db, PostgresqlDatabase)
    with db.connection_context() if db.is_closed() else nullcontext():
        if pg:
            db.execute_sql(f"SELECT pg_advisory_lock({ADVISORY_LOCK})")
        try:
            # Up to date: nothing written, so a PostgreSQL role that may not
            # create tables (any operator but the owner) opens it all the same.
            if _has_schema_table(db, pg):
                current = _current_version(db)
                _check_not_newer(current, target)
                if current == target:
                    return
            db.execute_sql("CREATE TABLE IF NOT EXISTS batchtui_schema (version INTEGER NOT NULL)")
            migrator = SchemaMigrator.from_database(db)
            # atomic=False: SqliteMigrator switches foreign keys off (possible only outside a
            # transaction) and on again afterwards; the transaction is ours, below.
            with migrator.migration_context(atomic=False), _transaction(db, pg):
                current = _current_version(db)  # again: another process may have migrated meanwhile
                _check_not_newer(current, target)
                for version, step in steps:
                    if version > current:
                        step(db, migrator)
                        db.execute_sql("DELETE FROM batchtui_schema")
                        db.execute_sql(f"INSERT INTO batchtui_schema (version) VALUES ({int(version)})")
                if not pg:
                    _check_foreign_keys(db)
        finally:
            if pg:
                db.execute_sql(f"SELECT pg_advisory_unlock({ADVISORY_LOCK})")


@contextmanager
def _transaction(db: Database, pg: bool):
    """BEGIN IMMEDIATE on SQLite: the write lock up front, so two processes queue instead of failing."""
    with db.atomic() if pg else db.atomic(lock_type="IMMEDIATE"):
        yield


def _check_not_newer(current: int, target: int) -> None:
    if current > target:
        raise UserError(
            f"the database has schema version {current}, newer than this batchtui ({target}): upgrade batchtui"
        )


def _check_foreign_keys(db: Database) -> None:
    """Refuse to commit a SQLite upgrade that left a row whose parent is gone (foreign keys were off)."""
    broken = db.execute_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        shown = ", ".join(f"{table} row {rowid} -> {parent}" for table, rowid, parent, _ in broken[:5])
        raise RuntimeError(f"the schema upgrade broke {len(broken)} foreign keys: {shown}")


def _has_schema_table(db: Database, pg: bool) -> bool:
    if pg:
        return db.execute_sql("SELECT to_regclass('batchtui_schema') IS NOT NULL").fetchone()[0]
    return db.execute_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'batchtui_schema'").fetchone() is not None


def _current_version(db: Database) -> int:
    row = db.execute_sql("SELECT MAX(version) FROM batchtui_schema").fetchone()
    return int(row[0]) if row and row[0] is not None else 0
