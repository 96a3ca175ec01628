"""Choosing and opening the database, its pragmas, and write transactions.

The schema and its history are in the migrations package; open_database runs it.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import platformdirs
from peewee import Database, OperationalError, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import connect as url_connect

from . import models
from .errors import UserError
from .migrations import migrate_schema

T = TypeVar("T")

APP = "batchtui"


def _adapt_datetime(value: datetime) -> str:
    # A fixed width text (always with microseconds) keeps SQLite's text
    # comparison of times in time order.
    return value.isoformat(" ", "microseconds")


sqlite3.register_adapter(datetime, _adapt_datetime)


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP))


def default_url() -> str:
    return f"sqlite:///{data_dir() / 'batchtui.db'}"


def demo_url() -> str:
    return f"sqlite:///{data_dir() / 'demo.db'}"


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("BATCHTUI_DB") or default_url()


def is_postgres(db: Database | None = None) -> bool:
    db = db or models.database.obj
    return isinstance(db, PostgresqlDatabase)


class SqliteFile(SqliteDatabase):
    """A SQLite database whose file is never created by a (re)connection.

    ``open_database`` makes the file once. A thread that connects again later
    (after an error, or its first query) while the file or its folder is gone
    would otherwise get a new, empty database there and carry on as if every
    job were gone: it gets an OperationalError instead.
    """

    def _connect(self):
        from peewee import OperationalError

        if not os.path.isfile(self.database):
            raise OperationalError(f"the database file {self.database} is missing")
        return super()._connect()  # type: ignore[misc]  # peewee's annotations leave out _connect


def open_database(url: str | None = None, migrate: bool = True) -> Database:
    """Open the database named by url (or BATCHTUI_DB, or the default file)."""
    url = resolve_url(url)
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # The text after "sqlite:///" as it is (not percent-decoded): "/x.db" for sqlite:////x.db.
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path or path == ":memory:":
            raise UserError("the database URL needs a file: sqlite:///ABSOLUTE/PATH.db")
        if "?" in path:
            # Not part of the file name (a server would open another file than the
            # operator's), and not honoured either: refused.
            raise UserError(f"the SQLite database URL takes no options ({path[path.index('?'):]!r}): "
                            "use sqlite:///ABSOLUTE/PATH.db")
        try:
            file = Path(path).expanduser()
        except RuntimeError:  # ~someone who has no home folder here
            file = Path(path)
        if not file.is_absolute():
            # A relative path depends on the folder each process starts in: a batch
            # server started elsewhere would see another, empty database.
            raise UserError(f"the database URL needs an absolute path: sqlite:///ABSOLUTE/PATH.db, "
                            f"not the relative {path!r}")
        try:
            if not file.parent.exists():
                file.parent.mkdir(parents=True, mode=0o700)
            if not file.exists():
                fd = os.open(file, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        except OSError as exc:  # the folder or file cannot be made: not the user's input (exit 1)
            raise DatabaseUnavailable(f"cannot create the database file {file}: {exc.strerror}") from None
        db = SqliteFile(
            str(file),
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": 15000,
                "synchronous": "normal",
            },
            timeout=15,
            check_same_thread=False,
            # Prepared statements kept per connection (the driver's default is 128):
            # the batch server's statements of many rows come in a few sizes each
            # (engine/dialect.py, VALUES_MAX), and re-preparing one costs more than running it.
            cached_statements=512,
        )
    elif parsed.scheme in ("postgresql", "postgres"):
        if not parsed.path.strip("/"):
            raise UserError("the database URL needs a database name: postgresql://USER@HOST/DBNAME")
        if importlib.util.find_spec("psycopg") is None:
            raise UserError("a PostgreSQL database needs the psycopg driver, which is not installed: "
                            "pip install 'batchtui[postgres]'")
        db = url_connect(url.replace("postgres://", "postgresql://", 1), prefer_psycopg3=True)
    else:
        raise UserError(
            f"unsupported database URL {url!r}: use sqlite:///ABSOLUTE/PATH.db "
            "or postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME"
        )
    models.database.initialize(db)
    if migrate:
        try:
            migrate_schema(db)
        except UserError:
            raise
        except Exception as exc:  # connection refused, permission, corrupt file
            raise DatabaseUnavailable(f"cannot open the database {redact(url)}: {first_line(exc)}") from exc
    return db


class DatabaseUnavailable(Exception):
    """The database cannot be reached; not the user's input (exit 1)."""


def file_identity() -> tuple[int, int] | None:
    """(device, inode) of the open SQLite file; None for PostgreSQL.

    A long-lived connection keeps writing to a file that was deleted or
    replaced under it; comparing identities tells the batch server to
    reconnect. A missing file reads as (0, 0).
    """
    db = models.database.obj
    if not isinstance(db, SqliteDatabase):
        return None
    try:
        st = os.stat(db.database)
    except OSError:
        return (0, 0)
    return (st.st_dev, st.st_ino)


def redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def retried(step: Callable[[], T], attempts: int = 4) -> T:
    """Run ``step`` in a write transaction, again when PostgreSQL aborted it for a deadlock.

    An operator's change locks a job and then its tasks while a batch server
    settles those tasks and then advances the job: PostgreSQL breaks such a
    cycle by aborting one side. The server's round is retried by its loop;
    an operator's change is retried here, from fresh reads, so the operator
    sees it done (or refused for what it found), never "deadlock detected".
    """
    for attempt in range(attempts):
        try:
            with write():
                return step()
        except OperationalError as exc:
            if models.database.in_transaction() or attempt == attempts - 1 or not deadlocked(exc):
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def deadlocked(exc: BaseException) -> bool:
    """PostgreSQL aborted the transaction to break a deadlock (or a serialization failure): a lost race."""
    # psycopg's DeadlockDetected (40P01) or SerializationFailure (40001), wrapped by peewee.
    cause = exc.__cause__ or exc.__context__
    return getattr(cause, "sqlstate", None) in ("40P01", "40001") or "deadlock detected" in str(exc)


@contextmanager
def write():
    """A write transaction: BEGIN IMMEDIATE on SQLite, a plain one on PostgreSQL.

    Taking SQLite's write lock up front means a transaction never fails half
    way for want of it; writers queue on the busy timeout instead.
    """
    db = models.database
    if db.in_transaction():
        # Part of a larger transaction (the batch server's round): no savepoint.
        yield db
    elif is_postgres():
        with db.atomic():
            yield db
    else:
        with db.atomic(lock_type="IMMEDIATE"):
            yield db
