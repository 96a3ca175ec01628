"""One place where a database error in any handler of the console ends up.

Textual ends the app, with a traceback, on an exception a handler lets
through, and a message pump whose handler raised stops reading its messages.
A database that went away is not a bug of the console: the screens, dialogs
and grids take this mix-in, so an error of the database in one of their
handlers is handed to the app (``BatchTuiApp.database_error``: it says so and
keeps the operator's input) and the pump carries on. The app has the same
for its own handlers and actions, and for timers and rendering, which do not
run inside a message handler.

Before each message the calling thread's connection is checked to still be on
the database's file (``ThreadConnection``), so a save never goes to a SQLite
file that was moved away or replaced.
"""

from __future__ import annotations

from .outage import is_db_error


def report(app, exc: BaseException) -> None:
    handler = getattr(app, "database_error", None)
    if handler is None:
        raise exc
    handler(exc)


def check_connection(app) -> None:
    check = getattr(app, "check_connection", None)
    if check is not None:
        check()


class GuardedPump:
    """Mix-in for a MessagePump (put it first among the bases)."""

    async def _dispatch_message(self, message) -> None:
        app = self.app
        check_connection(app)
        try:
            await super()._dispatch_message(message)
        except Exception as exc:
            if not is_db_error(exc):
                raise
            report(app, exc)
