"""The operator's log of `batchtui server`: one line per event on stderr, as text or JSON.

Every module of batchtui logs under the "batchtui" logger (``batchtui.engine``,
``batchtui.config``...). ``configure`` gives that logger one handler, so a
line never goes through Python's last-resort handler (no time, no level):

- text: ``2026-12-01T18:02:03.456Z INFO    batch server aos1 started ...``;
  every control, escape and line-separator character of the message is
  escaped (text.visible), so a task description or a log line that holds
  ``ESC[2J`` or a newline cannot act on the terminal or forge a line.
- json: one object a line with ``time``, ``level``, ``message``, ``logger`` and,
  for task events, ``job``, ``task``, ``attempt`` (integers) and ``status``
  (the command line's status names), plus ``event`` (what happened, a fixed
  word such as ``attempt_started``); written as text.json_escaped does, so the
  line holds no raw control character either.

The console's embedded server logs to a file instead (``to_file``): nothing
it logs reaches the console's terminal.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from .text import json_escaped, visible

LOGGER = "batchtui"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("text", "json")
#: How long the log's writer thread lets lines gather before it writes them (_Buffered).
_GATHER = 0.05
#: The fields a log record may carry besides its message (logging's ``extra=``), in the order shown.
FIELDS = ("event", "server", "job", "task", "attempt", "status", "description", "seconds")


class _Handler(logging.StreamHandler):
    """The handler this module installs (so that configuring again replaces it, not another one)."""


class _Buffered(_Handler):
    """A _Handler whose lines below WARNING are formatted and written by a thread of their own.

    The batch server's loop logs two lines an attempt (engine/oplog.py).
    Formatting and writing each on the loop (a write and a flush a line) made
    one server on PostgreSQL about a fifth slower with thousands of short tasks
    a second (issue 17). Here the logging thread only queues the record; the
    writer thread formats whatever has queued and writes it with one flush. A
    WARNING or worse is written at once by the thread that logs it, after
    everything queued before it (the order is kept), so that an error is out
    before the process may die of it. flush() and close() (logging.shutdown at
    exit, the end of ``configured``) write everything still queued; a SIGKILL
    loses at most the lines of the last _GATHER (50 ms).
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._run, name="batchtui-log-writer", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        self._pending.put(record)
        if record.levelno >= logging.WARNING or self._closed:
            self._drain()
        elif not self._wake.is_set():  # set() takes a lock and notifies: once a batch is enough
            self._wake.set()

    def flush(self) -> None:
        self._drain()

    def close(self) -> None:
        self._drain()
        self._closed = True
        self._wake.set()
        super().close()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            time.sleep(_GATHER)  # let a burst queue up: one wake-up, one write and one flush for it
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        with self._write_lock:
            wrote = False
            while True:
                try:
                    record = self._pending.get_nowait()
                except queue.Empty:
                    break
                try:
                    self.stream.write(self.format(record) + self.terminator)
                    wrote = True
                except Exception:  # noqa: BLE001  (logging's own rule: a line that cannot be written is reported, never raised)
                    self.handleError(record)
            if wrote:
                try:
                    self.stream.flush()
                except (OSError, ValueError):
                    pass  # the stream is gone (closed, a broken pipe): the next write reports it


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``TIME LEVEL MESSAGE [key=value ...]``, one line, nothing raw for the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname:<7} {visible(record.getMessage())}"
        extra = [f"{key}={visible(getattr(record, key))}" for key in FIELDS[:6] if hasattr(record, key)]
        if extra:
            line += " [" + " ".join(extra) + "]"
        if record.exc_info:
            line += " " + visible(self.formatException(record.exc_info))  # its newlines escaped: still one line
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"time": _time(record), "level": record.levelname.lower(),
                                "message": record.getMessage(), "logger": record.name}
        for key in FIELDS:
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json_escaped(json.dumps(data, ensure_ascii=False, default=str))


def configure(level: str = "info", fmt: str = "text", stream: TextIO | None = None,
              buffered: bool = False) -> logging.Logger:
    """Log batchtui's events to stream (stderr) at level, as text or JSON; replaces an earlier configure.

    buffered: lines below WARNING are written by a thread of their own (_Buffered: `batchtui server`)."""
    logger = logging.getLogger(LOGGER)
    _install(logger, (_Buffered if buffered else _Handler)(stream or sys.stderr), fmt)
    logger.setLevel(LEVELS[level])
    return logger


@contextmanager
def configured(level: str = "info", fmt: str = "text", stream: TextIO | None = None,
               buffered: bool = False) -> Iterator[logging.Logger]:
    """configure() for the time of a with block (a command run in-process, a test), then as it was.

    buffered (`batchtui server`): for the block, log records do not look up what
    neither format shows (the calling function and line, thread and process
    names), as logging's HOWTO ("Optimization") describes: about a fifth of a
    line's cost, two lines an attempt."""
    with _restored(), (_lean_records() if buffered else nullcontext()):
        yield configure(level, fmt, stream, buffered)


@contextmanager
def _lean_records() -> Iterator[None]:
    saved = (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    try:
        yield
    finally:
        logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = saved


@contextmanager
def to_file(path: Path, level: str = "warning") -> Iterator[None]:
    """Log batchtui's events to a file (the console's embedded server), never to the terminal, within the block.

    If the file cannot be opened, the events are dropped rather than printed
    over the console's screen (the console shows the server's errors itself).
    """
    logger = logging.getLogger(LOGGER)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8", errors="backslashreplace")
    except OSError:
        handler = logging.NullHandler()
    with _restored():
        _install(logger, handler, "text")
        logger.setLevel(LEVELS[level])
        try:
            yield
        finally:
            handler.close()


@contextmanager
def _restored() -> Iterator[None]:
    """The "batchtui" logger's handlers, level and propagation as they were before the block."""
    logger = logging.getLogger(LOGGER)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        yield
    finally:
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
                if isinstance(handler, _Buffered):
                    handler.close()  # what it still holds is written
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _install(logger: logging.Logger, handler: logging.Handler, fmt: str) -> None:
    for old in list(logger.handlers):
        if isinstance(old, (_Handler, logging.FileHandler, logging.NullHandler)):
            logger.removeHandler(old)
            if isinstance(old, (logging.FileHandler, _Buffered)):
                old.close()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.propagate = False  # never also through the root logger's (or the last-resort) handler


def set_level(level: str) -> None:
    logging.getLogger(LOGGER).setLevel(LEVELS[level])


def level_name() -> str:
    value = logging.getLogger(LOGGER).level
    return next((name for name, n in LEVELS.items() if n == value), logging.getLevelName(value).lower())
