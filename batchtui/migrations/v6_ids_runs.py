"""Schema version 6: an id is never given twice, and "End after N" counts runs.

1. On SQLite a table whose key is a plain INTEGER PRIMARY KEY gives a new row
   the id after the largest one there *now*: delete the newest job and the
   next job gets its id, its tasks the ids of the deleted job's tasks, its
   attempts those of its attempts. A batch server that still held one of the
   old attempts then wrote the old job's output and end time into the new
   job's attempt, and ``job wait`` followed the new job (issue 16). Every
   table with such a key is rebuilt with ``INTEGER PRIMARY KEY AUTOINCREMENT``
   (SQLite's procedure for a change ALTER TABLE cannot make: a new table, the
   rows copied, the old one dropped, the new one renamed, the old one's
   indexes and triggers made again; foreign keys are off while steps run, see
   the package docstring). ``sqlite_sequence`` then remembers each table's
   largest id, and SQLite never gives an id at or below it again. The tables
   are found in the schema as it is when the step runs (the CREATE text each
   one has then, columns added by earlier steps included), not listed here.
   PostgreSQL's sequences never give a number twice: nothing to do there.

2. ``batch_job.recurrence_runs``: the runs made for the job's current
   recurrence. "End after N" counted occurrences, so an occurrence that fell
   due while a run was still running (or while no batch server ran) used up
   one of the N without a run. Jobs of an older database start from their
   run count.

Frozen: written out, as everything in this package.
"""

from __future__ import annotations

from peewee import PostgresqlDatabase

#: The key of every table of step 1, as SQLite keeps its CREATE text.
PLAIN_KEY = '"id" INTEGER NOT NULL PRIMARY KEY'
AUTOINCREMENT_KEY = PLAIN_KEY + " AUTOINCREMENT"

ADD_RECURRENCE_RUNS = 'ALTER TABLE "batch_job" ADD COLUMN "recurrence_runs" INTEGER NOT NULL DEFAULT 0'
SEED_RECURRENCE_RUNS = 'UPDATE "batch_job" SET "recurrence_runs" = "run_count" WHERE "recurrence" IS NOT NULL'


def apply(db, migrator) -> None:
    if not isinstance(db, PostgresqlDatabase):
        for table, sql in _plain_key_tables(db):
            _rebuild_with_autoincrement(db, table, sql)
    db.execute_sql(ADD_RECURRENCE_RUNS)
    db.execute_sql(SEED_RECURRENCE_RUNS)


def _plain_key_tables(db) -> list[tuple[str, str]]:
    """(name, CREATE text) of each table whose id is a plain INTEGER PRIMARY KEY, by name."""
    rows = db.execute_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    return [(name, sql) for name, sql in rows
            if sql and AUTOINCREMENT_KEY not in sql and (PLAIN_KEY + "," in sql or PLAIN_KEY + ")" in sql)]


def _rebuild_with_autoincrement(db, table: str, sql: str) -> None:
    quoted = '"' + table.replace('"', '""') + '"'
    new = '"' + (table + "__v6").replace('"', '""') + '"'
    # Indexes and triggers go with the dropped table: their CREATE text, to make them again.
    # (An index SQLite made for a UNIQUE or PRIMARY KEY constraint has none: the new table makes it.)
    others = [r[0] for r in db.execute_sql(
        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') AND sql IS NOT NULL "
        "ORDER BY type, name", (table,)).fetchall()]
    columns = sql[sql.index("("):]  # CREATE TABLE "name" (...): from the column list on
    db.execute_sql(f"CREATE TABLE {new} " + columns.replace(PLAIN_KEY, AUTOINCREMENT_KEY, 1))
    db.execute_sql(f"INSERT INTO {new} SELECT * FROM {quoted}")
    db.execute_sql(f"DROP TABLE {quoted}")
    db.execute_sql(f"ALTER TABLE {new} RENAME TO {quoted}")
    for other in others:
        db.execute_sql(other)
    # The copy set the sequence to the largest id copied (renamed with the table); an empty
    # table has none yet, and starts at 1 as before.
    db.execute_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
    db.execute_sql(f"INSERT INTO sqlite_sequence (name, seq) SELECT ?, MAX(id) FROM {quoted} "
                   "HAVING MAX(id) IS NOT NULL", (table,))
