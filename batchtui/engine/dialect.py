"""Where SQLite and PostgreSQL differ, for the statements of the engine store.

The batch server's hot path is written in plain SQL: building the same
statements through the ORM cost ten times the database work itself. The
statements are written once with "?" placeholders; a dialect runs them on
the driver's cursor (peewee's exception types all the same) and supplies
the few fragments that differ: row locks, index hints, how new ids are
given, how a time is passed.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from datetime import datetime
from typing import Any

from peewee import Database, PostgresqlDatabase, __exception_wrapper__  # type: ignore[attr-defined]  # not in peewee's annotations

NOTIFY_CHANNEL = "batchtui"

# Rows of an UPDATE or INSERT of many rows that SQLite runs as one statement
# (issue 17). The driver lets other threads run during each step of a
# statement, and an executemany is a step a row: while the worker threads ran
# short tasks, the loop waited for the GIL after nearly every row. With 4 busy
# threads beside it, an executemany of 64 updates cost 6.8-11 µs a row, the
# same rows as one statement 3.1-3.4 µs (3.4 µs either way without them); 20,000
# one-task jobs went from 13,757 to 15,112 tasks/s (median of 5). A batch of n
# rows is padded to the next power of two with rows of NULLs, which change
# nothing (a NULL key matches no row; an insert leaves them out): a few
# statement texts, each prepared once.
VALUES_MAX = 128
# UPDATE ... FROM needs SQLite 3.33; before it, an executemany.
_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)


class Bulk:
    """An UPDATE of many rows, each with its own values, written once for both databases.

    ``sets`` are (column, PostgreSQL type, expression), the expression naming
    the row's value as ``{v}`` (None: the value itself; a type of None: the
    expression alone, no value, as ``attempt = NULL``); ``keys`` are (column,
    type) compared for equality; ``where`` is a further condition (no
    parameters). A row gives the set values, then the key values, in order.

    PostgreSQL runs it as one statement, whatever the number of rows:
    ``UPDATE ... FROM unnest(arrays)``, a column an array. Sent as an
    executemany, each row was a statement of its own, executed apart by the
    server: a round of 8 tasks took 4 such batches (issue 17: 74 µs a row,
    the largest cost of a PostgreSQL round). SQLite runs it as ``UPDATE ...
    FROM (VALUES (...), ...)``, up to VALUES_MAX rows a statement (see
    Dialect.bulk). The keys must name each row at most once (an id), so that
    the rows changed can be counted as with executemany.
    """

    def __init__(self, table: str, sets: Sequence[tuple[str, str | None, str | None]],
                 keys: Sequence[tuple[str, str]], where: str = "") -> None:
        extra = f" AND {where}" if where else ""
        valued = [(col, typ) for col, typ, _ in sets if typ is not None]
        columns: list[tuple[str, str]] = [*valued, *keys]
        names = [f"v{i}" for i in range(len(columns))]

        def assignments(mark: Callable[[int], str]) -> str:
            out, i = [], 0
            for col, typ, expr in sets:
                if typ is None:
                    out.append(f"{col} = {expr}")
                else:
                    out.append(f"{col} = {(expr or '{v}').format(v=mark(i))}")
                    i += 1
            return ", ".join(out)

        self.sqlite = (f"UPDATE {table} SET {assignments(lambda i: '?')}"
                       + " WHERE " + " AND ".join(f"{col} = ?" for col, _ in keys) + extra)
        # SQLite's VALUES names its columns column1, column2...; "{rows}" is the
        # rows' placeholders (see Dialect.bulk).
        self.sqlite_values = (
            f"UPDATE {table} SET {assignments(lambda i: f'v.column{i + 1}')} FROM (VALUES {{rows}}) AS v WHERE "
            + " AND ".join(f"{table}.{col} = v.column{len(valued) + k + 1}" for k, (col, _) in enumerate(keys))
            + extra)
        self.pg = (f"UPDATE {table} SET {assignments(lambda i: f'v.{names[i]}')}"
                   + " FROM unnest(" + ", ".join(f"%s::{typ}[]" for _, typ in columns) + f") AS v({', '.join(names)})"
                   + " WHERE " + " AND ".join(f"{table}.{col} = v.{name}"
                                              for (col, _), name in zip(keys, names[len(valued):], strict=True))
                   + extra)
        self.width = len(columns)


class Dialect:
    """SQLite: the write lock is taken up front (BEGIN IMMEDIATE), so nothing needs row locks."""

    pg = False
    per_row = ""  # see PgDialect.per_row (SQLite runs an EXISTS per row as written)

    def __init__(self, database: Any) -> None:
        self.database = database  # the models' DatabaseProxy
        self._marked: dict[tuple[str, int], str] = {}
        self._inserts: dict[str, str] = {}
        self.values_rows = _UPDATE_FROM  # see VALUES_MAX (a test turns it off to check the fallback)

    @staticmethod
    def of(database: Any) -> Dialect:
        obj = getattr(database, "obj", database)
        return PgDialect(database) if isinstance(obj, PostgresqlDatabase) else Dialect(database)

    # -- running statements ------------------------------------------------------

    def sql(self, text: str) -> str:
        return text

    def x(self, text: str, params: Sequence[Any] = ()) -> Any:
        """Execute on the driver's cursor (peewee's execute_sql adds logging and hooks we do not use)."""
        obj: Database = self.database.obj
        with __exception_wrapper__:
            cursor = obj.cursor()
            cursor.execute(self.sql(text), params)
        return cursor

    def rows_after(self, setup: str, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run setup (no parameters), then text; text's rows. PostgreSQL: one round trip for both."""
        self.x(setup)
        return list(self.x(text, params).fetchall())

    def many(self, text: str, rows: Sequence[Sequence[Any]]) -> int:
        """executemany; returns how many rows it changed."""
        if not rows:
            return 0
        obj: Database = self.database.obj
        with __exception_wrapper__:
            cursor = obj.cursor()
            cursor.executemany(self.sql(text), rows)
        return int(cursor.rowcount)

    def many_exactly(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        """executemany of compare-and-set updates that must all apply."""
        exactly(self.many(text, rows), len(rows))

    def bulk(self, update: Bulk, rows: Sequence[Sequence[Any]]) -> int:
        """Run a Bulk update for these rows; how many rows it changed (see VALUES_MAX)."""
        if not rows:
            return 0
        for row in rows:
            if len(row) != update.width:
                raise ValueError(f"a row of {len(row)} values for an update of {update.width}")
        if not self.values_rows:
            return self.many(update.sqlite, rows)
        return self._values_many(update.sqlite_values, update.width, rows)

    def _values_many(self, template: str, width: int, rows: Sequence[Sequence[Any]]) -> int:
        """Run template ("{rows}": a VALUES list) for rows of width values, at most VALUES_MAX
        rows a statement, each padded with rows of NULLs to a power of two; how many rows changed."""
        changed = 0
        for start in range(0, len(rows), VALUES_MAX):
            part = rows[start:start + VALUES_MAX]
            size = 1
            while size < len(part):
                size *= 2
            flat = [value for row in part for value in row]
            flat.extend([None] * (width * (size - len(part))))
            changed += int(self.x(self._values(template, width, size), flat).rowcount)
        return changed

    def _values(self, template: str, width: int, n: int) -> str:
        """template with "{rows}" replaced by n rows of width placeholders (made once, see marked)."""
        key = (template, n)
        out = self._marked.get(key)
        if out is None:
            row = "(" + ",".join("?" * width) + ")"
            out = self._marked[key] = template.replace("{rows}", ",".join([row] * n))
        return out

    def bulk_exactly(self, update: Bulk, rows: Sequence[Sequence[Any]]) -> None:
        """A Bulk of compare-and-set updates that must all apply."""
        exactly(self.bulk(update, rows), len(rows))

    def marked(self, template: str, n: int) -> str:
        """template with "{in}" replaced by n placeholders, made once per (template, n).

        The same string object every time: its hash is kept, and the driver's
        statement cache (keyed by the text) finds it at once.
        """
        key = (template, n)
        out = self._marked.get(key)
        if out is None:
            out = self._marked[key] = template.replace("{in}", ",".join("?" * n))
        return out

    # -- fragments that differ -------------------------------------------------------

    def when(self, value: datetime | None) -> Any:
        """A time as a statement parameter: on SQLite the text db._adapt_datetime
        would make, made once for a time that many rows share."""
        if value is None:
            return None
        return value.isoformat(" ", "microseconds")

    def lock(self, of: str = "") -> str:
        """Row locks for rows this transaction will change, skipping those another server holds."""
        return ""

    def hint(self, table: str, index: str) -> str:
        """SQLite's planner, without statistics, sometimes picks the wrong index."""
        return f"{table} INDEXED BY {index}"

    def insert_ids(self, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> list[int]:
        """Insert rows and return their new ids, in order. columns: (name, PostgreSQL type).

        SQLite: the write lock is held, so the ids after the highest ever given
        are ours to give, in one executemany. That is the table's AUTOINCREMENT
        sequence (migration 6), never the largest id left: the newest row may
        have been deleted, and its id must not name another row (a batch server
        that still holds it would write there). Inserting them moves the
        sequence on past them.
        """
        if not rows:
            return []
        first = self.x(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0)) + 1", (table,)).fetchone()[0]
        ids = list(range(first, first + len(rows)))
        names = ", ".join(name for name, _ in columns)
        numbered = [(i, *row) for i, row in zip(ids, rows, strict=True)]
        if not self.values_rows:
            marks = ", ".join("?" * (len(columns) + 1))
            self.many(f"INSERT INTO {table} (id, {names}) VALUES ({marks})", numbered)
            return ids
        template = self._inserts.get(table)
        if template is None:
            # The padding rows (a NULL id) are left out.
            template = self._inserts[table] = (
                f"INSERT INTO {table} (id, {names}) SELECT * FROM (VALUES {{rows}}) WHERE column1 IS NOT NULL")
        exactly(self._values_many(template, len(columns) + 1, numbered), len(rows))
        return ids

    def engine_session(self) -> None:
        """Settings of a batch server's own connection, once it is opened (PostgreSQL only)."""

    def notify(self) -> None:
        """Wake the batch servers of other processes (PostgreSQL only)."""

    def listen(self, stop: threading.Event, woken: Callable[[], None], lost: Callable[[Exception], None]) -> None:
        """Call woken() for each NOTIFY from another process until stop is set (PostgreSQL only)."""


class PgDialect(Dialect):
    """PostgreSQL: rows are locked with SKIP LOCKED, ids come from the sequences, LISTEN/NOTIFY wakes."""

    pg = True
    # Ends an EXISTS subquery that must stay one lookup per outer row (by an
    # index on the row's key): PostgreSQL turns a NOT EXISTS into an anti join,
    # and without statistics it estimated a few active tasks and joined every
    # job checked to all of them (47,744 rows compared to finish 16 runs,
    # 5 ms; issue 17). OFFSET 0 keeps the subquery as it is written.
    per_row = " OFFSET 0"

    def __init__(self, database: Any) -> None:
        super().__init__(database)
        self._sql: dict[str, str] = {}

    def sql(self, text: str) -> str:
        out = self._sql.get(text)
        if out is None:
            out = self._sql[text] = text.replace("?", "%s")
        return out

    def rows_after(self, setup: str, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run setup (no parameters: SET LOCAL ...) then text, sent together in
        one round trip (a psycopg pipeline: one Sync for both); text's rows."""
        if not _pipelines():
            return super().rows_after(setup, text, params)
        obj: Database = self.database.obj
        with __exception_wrapper__:
            conn = obj.connection()
            cursor = conn.cursor()
            with conn.pipeline():
                for statement in setup.split("; "):  # a pipeline takes one command a statement
                    conn.execute(statement)
                cursor.execute(self.sql(text), params)
            return list(cursor.fetchall())

    def bulk(self, update: Bulk, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        columns = [list(column) for column in zip(*rows, strict=True)]
        if len(columns) != update.width:
            raise ValueError(f"a row of {len(columns)} values for an update of {update.width}")
        obj: Database = self.database.obj
        with __exception_wrapper__:
            cursor = obj.cursor()
            cursor.execute(update.pg, columns)  # its own placeholders (%s): not through sql()
        return int(cursor.rowcount)

    def when(self, value: datetime | None) -> Any:
        return value

    def lock(self, of: str = "") -> str:
        return f" FOR UPDATE{' OF ' + of if of else ''} SKIP LOCKED"

    def hint(self, table: str, index: str) -> str:
        return table

    def insert_ids(self, table: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> list[int]:
        # One statement (an executemany was a statement per row for the
        # server; see Bulk): the rows come as arrays, a column an array; each
        # takes an id from the table's sequence in a CTE that is worked out
        # once (nextval is volatile), which the INSERT reads and whose ids come
        # back in the rows' order.
        if not rows:
            return []
        text = self._inserts.get(table)
        if text is None:
            names = [name for name, _ in columns]
            cols = ", ".join(names)
            text = self._inserts[table] = (
                f"WITH v AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('{table}', 'id')) AS id, u.* "
                "FROM unnest(" + ", ".join(f"%s::{typ}[]" for _, typ in columns) + f") WITH ORDINALITY "
                f"AS u({cols}, ord)), "
                f"ins AS (INSERT INTO {table} (id, {cols}) SELECT id, {cols} FROM v) "
                "SELECT id FROM v ORDER BY ord")
        values = [list(column) for column in zip(*rows, strict=True)]
        obj: Database = self.database.obj
        with __exception_wrapper__:
            cursor = obj.cursor()
            cursor.execute(text, values)
            ids = [r[0] for r in cursor.fetchall()]
        exactly(len(ids), len(rows))
        return ids

    def engine_session(self) -> None:
        # The batch server's statements each touch a few rows by key; the
        # plans that suit them are index scans and nested loops, whatever the
        # statistics say. Tables filled since their last ANALYZE (a backlog
        # loaded at once, a new database) were planned as sequential scans and
        # hash joins of the whole table, a cost growing with the table, every
        # round (issue 17). Only where no index serves does a scan remain, and
        # its cost, made huge by these settings, must not start JIT
        # compilation (tens of milliseconds a statement).
        for setting in ("jit = off", "enable_seqscan = off", "enable_hashjoin = off", "enable_mergejoin = off"):
            self.x(f"SET {setting}")

    def notify(self) -> None:
        self.x(f"NOTIFY {NOTIFY_CHANNEL}")

    def listen(self, stop: threading.Event, woken: Callable[[], None], lost: Callable[[Exception], None]) -> None:
        # A connection of its own, in autocommit; polling stays the fallback
        # while it is lost, and it is opened again with back-off.
        import psycopg

        db = self.database.obj
        params = dict(db.connect_params)
        params.pop("prefer_psycopg3", None)
        delay = 0.5
        while not stop.is_set():
            try:
                with psycopg.connect(dbname=db.database, autocommit=True, **params) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    delay = 0.5
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            woken()
            except Exception as exc:  # noqa: BLE001  (any failure of the connection: retried)
                lost(exc)
                stop.wait(delay)
                delay = min(30.0, delay * 2)


_PIPELINES: list[bool] = []


def _pipelines() -> bool:
    """Whether psycopg can pipeline here (its libpq must be 14 or later; the binary wheel's is)."""
    if not _PIPELINES:
        import psycopg

        _PIPELINES.append(bool(psycopg.Pipeline.is_supported()))
    return _PIPELINES[0]


def exactly(changed: int, expected: int) -> None:
    if changed != expected:
        raise RowsChanged(f"{changed} of {expected} rows changed meanwhile; the round is retried")


class RowsChanged(RuntimeError):
    """A compare-and-set found rows in another state than read: the transaction is rolled back and retried."""


def in_marks(values: Sized) -> str:
    return ",".join("?" * len(values))


def chunks(values: Iterable[Any], size: int = 500) -> Iterator[list[Any]]:
    values = list(values)
    for i in range(0, len(values), size):
        yield values[i:i + size]


def as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))

