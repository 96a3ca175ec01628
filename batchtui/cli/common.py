"""What every command shares: exit codes, output, the database and the acting user."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..text import json_escaped, visible

if TYPE_CHECKING:
    from ..actor import Actor

PROG = "batchtui"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_RUN_ERROR = 3
EXIT_RUN_CANCELED = 4
EXIT_TIMEOUT = 5

__all__ = [
    "EXIT_FAILURE", "EXIT_OK", "EXIT_RUN_CANCELED", "EXIT_RUN_ERROR", "EXIT_TIMEOUT", "EXIT_USAGE", "PROG",
    "WRITE_PIECE", "connect", "emit", "emit_json", "emit_json_stream", "error", "note", "open_database",
    "read_input", "table", "visible", "write_out",
]


# -- output ------------------------------------------------------------------------


def emit_json(data: Any) -> None:
    """One JSON document; characters that would act on a terminal are escaped (text.json_escaped)."""
    sys.stdout.write(json_escaped(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")


#: Text written to stdout in pieces of at most this many characters (a log may be
#: hundreds of megabytes; its escaped copy and encoded bytes need not all exist at once).
WRITE_PIECE = 1 << 18


def write_out(text: str) -> None:
    """Text to stdout, a piece at a time."""
    if len(text) <= WRITE_PIECE:
        sys.stdout.write(text)
        return
    for start in range(0, len(text), WRITE_PIECE):
        sys.stdout.write(text[start:start + WRITE_PIECE])


def emit_json_stream(data: Any) -> None:
    """One JSON document, written as it is made: what emit_json prints, byte for byte.

    Iterators in data (a generator of runs, of attempts) are consumed as they
    are written, so a document far larger than memory can be printed.
    """
    _write_json(data, 0, lambda text: write_out(json_escaped(text)))
    sys.stdout.write("\n")


def _write_json(value: Any, level: int, write: Callable[[str], None]) -> None:
    """json.dumps(value, indent=2, ensure_ascii=False), written a value at a time."""
    inner = "\n" + "  " * (level + 1)
    if isinstance(value, dict):
        if not value:
            write("{}")
            return
        for n, (key, item) in enumerate(value.items()):
            write(("{" if n == 0 else ",") + inner + json.dumps(key, ensure_ascii=False) + ": ")
            _write_json(item, level + 1, write)
        write("\n" + "  " * level + "}")
    elif isinstance(value, (list, tuple, Iterator)):
        empty = True
        for item in value:
            write(("[" if empty else ",") + inner)
            _write_json(item, level + 1, write)
            empty = False
        write("[]" if empty else "\n" + "  " * level + "]")
    elif isinstance(value, str) and len(value) > WRITE_PIECE:
        # A long text (a log) as JSON a piece at a time: JSON escapes each character on its own.
        write('"')
        for start in range(0, len(value), WRITE_PIECE):
            write(json.dumps(value[start:start + WRITE_PIECE], ensure_ascii=False)[1:-1])
        write('"')
    else:
        write(json.dumps(value, ensure_ascii=False))


def emit(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Aligned columns (the last one is not padded)."""
    cells = [[visible(c) if c is not None else "" for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = []
    for row in [list(headers)] + cells:
        parts = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
    return lines


def note(message: str) -> None:
    """A remark for a person on stderr (e.g. an empty list), not an error."""
    sys.stderr.write(f"{message}\n")


def error(message: object) -> None:
    """The one line of a failed command: ``batchtui: error: WHAT AND WHY``."""
    line = " ".join(str(message).split()) or "failed"
    sys.stderr.write(f"{PROG}: error: {line}\n")


# -- context -----------------------------------------------------------------------


def open_database(args: argparse.Namespace) -> None:
    from .. import db

    db.open_database(args.db)


def connect(args: argparse.Namespace) -> Actor:
    """Open the database, then build the one Actor this command acts as.

    On PostgreSQL the database role decides who acts and who manages
    (identity.py), so the Actor is built after the database is open.
    """
    from ..actor import Actor

    open_database(args)
    return Actor.current()


def read_input(name: str) -> bytes:
    """The bytes of a file, or of stdin for ``-``; a missing or unreadable file is the user's error."""
    from ..errors import UserError

    if name == "-":
        return sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    try:
        return Path(name).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{name}: is a folder, not a file") from None
    except OSError as exc:
        raise UserError(f"{name}: cannot read it: {exc.strerror}") from None
