"""The command line: `batchtui` and its sub-commands (see the command-line contract).

Exit status: 0 success; 2 bad input (usage, validation, unknown id, refused
transition, not allowed), with one line ``batchtui: error: ...`` on stderr;
1 any other failure. `job wait` adds 3 (the run ended in error), 4
(canceled) and 5 (timed out). ``--json`` prints one JSON document on stdout.

The grammar is in ``parser.py``, the commands in a module per area (``jobs``,
``groups``, ``servers``, ``alerts``, ``misc``), each a thin layer over the
services that the console uses too. The console and the batch server are
imported only when asked for, so a script that lists jobs never loads Textual.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_RUN_CANCELED,
    EXIT_RUN_ERROR,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    PROG,
    error,
)
from .misc import cmd_console
from .parser import Command, UsageError, build_parser

__all__ = [
    "EXIT_FAILURE", "EXIT_OK", "EXIT_RUN_CANCELED", "EXIT_RUN_ERROR", "EXIT_TIMEOUT", "EXIT_USAGE", "PROG",
    "build_parser", "main", "run_command",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    bad = _not_text(argv)
    if bad is not None:
        error(bad)
        return EXIT_USAGE
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        error(exc)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)

    func: Command = cmd_console if args.command is None else args.func
    try:
        return run_command(func, args)
    finally:
        _close_database()


def _not_text(argv: list[str]) -> str | None:
    """Why an argument is refused before parsing: bytes that are not UTF-8 (a lone surrogate).

    Python hands such bytes over as lone surrogates (surrogateescape); neither
    database takes them as text, so a description or a name made of them
    would fail half way through a command.
    """
    from ..text import visible

    for n, arg in enumerate(argv, start=1):
        if any("\ud800" <= ch <= "\udfff" for ch in arg):
            try:
                shown = visible(repr(arg.encode("utf-8", "surrogateescape")))
            except UnicodeEncodeError:  # a surrogate that stands for no byte
                shown = visible(arg)
            return f"argument {n} ({shown}) is not UTF-8 text"
    return None


def run_command(func: Command, args: argparse.Namespace) -> int:
    from peewee import PeeweeException

    from ..db import DatabaseUnavailable, first_line
    from ..errors import UserError

    try:
        return func(args)
    except UserError as exc:
        error(exc)
        return EXIT_USAGE
    except DatabaseUnavailable as exc:
        error(exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:
        # `batchtui job list | head`: the reader went away; that is not our failure.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_FAILURE
    except PeeweeException as exc:
        from ..identity import refused_by_database

        refused = refused_by_database(exc)
        if refused is not None:  # PostgreSQL's guard triggers: the user's doing, as exit 2
            error(refused)
            return EXIT_USAGE
        error(f"database error: {first_line(exc)}")
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the details with BATCHTUI_DEBUG=1
        if os.environ.get("BATCHTUI_DEBUG"):
            import traceback

            traceback.print_exc()
        error(f"internal error: {type(exc).__name__}: {first_line(exc)} (set BATCHTUI_DEBUG=1 for details)")
        return EXIT_FAILURE


def _close_database() -> None:
    from .. import models

    try:
        if models.database.obj is not None and not models.database.is_closed():
            models.database.close()
    except Exception:  # noqa: BLE001 - closing after the command's own answer; nothing to add
        pass
