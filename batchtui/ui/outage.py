"""The database going away while the console is open, and coming back.

A SQLite file made read-only, its folder moved or removed, the file
replaced, a PostgreSQL server stopped and started again: the console says
so, keeps what the operator typed, and picks up again when the database is
back. This module holds what the app, the screens and the watcher share:

- ``is_db_error``: is this exception the database's (not a bug)?
- ``reason``: the one line an operator reads about it.
- ``ThreadConnection``: this thread's connection, checked to still be on the
  database's file (a long-lived SQLite connection keeps reading and writing
  a file that was moved away or replaced under it).

No Textual here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import peewee

from .. import models as m
from ..db import DatabaseUnavailable, file_identity, first_line


def _errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    errors: list[type[BaseException]] = [peewee.PeeweeException, sqlite3.Error, DatabaseUnavailable]
    # "The database cannot be used now": gone, stopped, unreachable, read-only, not a database.
    outages: list[type[BaseException]] = [peewee.OperationalError, peewee.InterfaceError,
                                          sqlite3.OperationalError, sqlite3.InterfaceError, DatabaseUnavailable]
    try:
        import psycopg

        errors.append(psycopg.Error)
        outages += [psycopg.OperationalError, psycopg.InterfaceError]
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        pass
    return tuple(errors), tuple(outages)


DB_ERRORS, _OUTAGES = _errors()


def is_db_error(exc: BaseException) -> bool:
    return isinstance(exc, DB_ERRORS)


def is_outage(exc: BaseException) -> bool:
    """A database error that means the database cannot be used now, not that a statement was
    refused (a constraint, a permission, a trigger's error)."""
    if isinstance(exc, _OUTAGES):
        return True
    # SQLite's "file is not a database" / "database disk image is malformed" are plain DatabaseErrors.
    return type(exc) in (peewee.DatabaseError, sqlite3.DatabaseError)


def reason(exc: BaseException) -> str:
    """What went wrong, in one line."""
    text = first_line(exc)
    if text.startswith("unable to open database file"):
        text = "cannot open the database file (was its folder moved or removed?)"
    elif "readonly database" in text:
        text = f"the database is read-only ({text})"
    return " ".join(text.split())


def close_quietly() -> None:
    """Close this thread's connection (never while a transaction is open in it)."""
    try:
        if not m.database.is_closed() and not m.database.in_transaction():
            m.database.close()
    except DB_ERRORS:
        pass  # a connection that is dead already: nothing to close


class ThreadConnection:
    """The calling thread's connection, kept on the database's file.

    ``check()`` closes the connection when the SQLite file it was opened on
    was removed or replaced (its (device, inode) changed), so the next query
    opens the file that is there now; the database refuses to connect while
    no file is there (it never creates an empty one). Cheap (one stat): run
    it before each piece of work. PostgreSQL: nothing to check.
    """

    def __init__(self) -> None:
        self.identity: tuple[int, int] | None = None

    def check(self) -> None:
        try:
            identity = file_identity()
        except AttributeError:  # the database is not initialised (tests tearing down)
            return
        if identity is None:
            return
        if m.database.is_closed():
            self.identity = identity  # the next connection opens this file, or is refused
            return
        if self.identity is None:
            self.identity = identity
        elif identity != self.identity:
            if not m.database.in_transaction():
                close_quietly()
                self.identity = identity


@contextmanager
def reading() -> Iterator[None]:
    """A worker thread's reads: on a connection of its own, on the database's file, closed after."""
    ThreadConnection().check()
    with m.database.connection_context():
        yield
