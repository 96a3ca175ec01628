"""The console's one way to call a service or read the database: ``ServiceCall``.

A database that went away is not a bug of the console: the operator is told
(the banner under the breadcrumb, a notification), what was typed stays in
the form, and the console carries on. Every place a screen, a dialog's
caller, a grid, a timer or a message handler calls a service or reads the
database does it inside a ``ServiceCall``::

    with self.service_call("Not saved") as call:
        jobs.update_job(...)
    if call.failed:
        return  # the form says why and keeps the input

or, for a whole handler or action, with the ``guarded`` decorator. A database
error inside is reported (``BatchTuiApp.database_error``) and swallowed; any
other exception goes on to Textual, which ends the app on a bug as it should.

Before the block, the calling thread's connection is checked to still be on
the database's file (``ThreadConnection``), so a save never goes to a SQLite
file that was moved away or replaced.

No private method of Textual is overridden: this is plain Python around our
own calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from .outage import is_db_error

if TYPE_CHECKING:
    from textual.app import App


class DatabaseReporter(Protocol):
    """What a ServiceCall needs of the app (``BatchTuiApp``)."""

    def check_connection(self) -> None: ...

    def database_error(self, exc: BaseException) -> None: ...


class ServiceCall:
    """A block that calls services or reads the database; a database error in it is
    reported, swallowed, and kept in ``failed``.

    refused(exc) is called after the report: a form says there why its save failed.
    """

    def __init__(self, app: App[Any] | DatabaseReporter,
                 refused: Callable[[BaseException], None] | None = None) -> None:
        self.app = app
        self.refused = refused
        self.failed: BaseException | None = None

    def __enter__(self) -> ServiceCall:
        check = getattr(self.app, "check_connection", None)
        if check is not None:
            check()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None or not is_db_error(exc):
            return False
        self.failed = exc
        report = getattr(self.app, "database_error", None)
        if report is None:
            return False  # not the console (a bare App in a test): let it through
        report(exc)
        if self.refused is not None:
            self.refused(exc)
        return True

    @property
    def ok(self) -> bool:
        return self.failed is None


class HasApp(Protocol):
    @property
    def app(self) -> Any: ...


S = TypeVar("S", bound=HasApp)
P = ParamSpec("P")
R = TypeVar("R")


def guarded(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R | None]:
    """A handler, action or callback of a screen, dialog or widget that reads the database:
    its body runs in a ServiceCall (None is returned when the database failed)."""

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R | None:
        with ServiceCall(self.app):
            return method(self, *args, **kwargs)
        return None

    return wrapper
