"""What a batch class is, what it declares, and what it gets while it runs.

A batch class is the ERP's "RunBaseBatch" job: a named piece of work with typed
parameters. The engine validates the parameters when a task is saved, then
builds a `TaskContext` for every attempt and calls `run(ctx)` in a worker
thread: returning means the task Ended, raising means Error (or Canceled when
the exception is `TaskCanceled` after a cancel).

Nothing here imports Textual or Peewee: a headless batch server loads it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from batchtui.errors import UserError

__all__ = [
    "REQUIRED",
    "PARAM_TYPES",
    "Param",
    "BatchClass",
    "TaskContext",
    "CancelFlag",
    "BatchClassError",
    "TaskCanceled",
    "ClassNotFound",
    "ParamError",
]


class _Required:
    """The sentinel type of `REQUIRED`: one instance, falsy, and readable in reprs."""

    _instance: _Required | None = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default of a parameter that a task must give."""

PARAM_TYPES = ("number", "integer", "text", "boolean", "text_or_list")


@dataclass(frozen=True)
class Param:
    """One parameter of a batch class, as the task form and job files show it.

    `minimum` applies to "number" and "integer"; with `exclusive_minimum` the
    value must be strictly greater (a timeout of 0 s makes no sense). A
    default of None means "not set": None is then also accepted as a value.
    """

    name: str
    type: str
    default: Any = REQUIRED
    help: str = ""
    minimum: float | None = None
    exclusive_minimum: bool = False

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(
                f"parameter {self.name!r}: unknown type {self.type!r} "
                f"(one of: {', '.join(PARAM_TYPES)})"
            )

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


class BatchClass:
    """Base of every batch class.

    Subclasses set `name`, `description` and `params`, and implement `run`.
    A subclass that leaves out `name` is named after its Python class, and one
    that leaves out `description` uses the first line of its docstring.
    The engine makes a fresh instance for every attempt.
    """

    name: ClassVar[str] = "BatchClass"
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: Whether an attempt may run again, without using a retry, when a crash
    #: cut it off before its start was recorded: True only for a class that
    #: does nothing outside the attempt (or, like ShellCommand, nothing before
    #: it has reported its process, which records the start). A batch server
    #: that claims short tasks ahead of its free threads starts such a class
    #: at once, and records the start in its next round; any other class
    #: claimed ahead waits for that record before it runs. Either way, a
    #: crash hands back, Ready with no retry used, what never started.
    rerun_safe: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        if "description" not in cls.__dict__:
            doc = (cls.__doc__ or "").strip()
            cls.description = doc.splitlines()[0].strip() if doc else ""
        cls.params = tuple(cls.params)
        for p in cls.params:
            if not isinstance(p, Param):
                raise TypeError(f"{cls.__name__}.params must hold Param objects, not {p!r}")

    def run(self, ctx: TaskContext) -> None:
        raise NotImplementedError(f"batch class {self.name} does not implement run()")


class BatchClassError(Exception):
    """Fails the task with this message in its log, without a traceback."""


class TaskCanceled(Exception):
    """Raised by a class that noticed the cancel flag and stopped."""


class ClassNotFound(UserError):
    """A task names a class that does not exist or cannot be loaded."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class ParamError(UserError):
    """A task's parameters do not fit its class. `.param` names the parameter."""

    def __init__(self, message: str, param: str | None = None, class_name: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.class_name = class_name


LogSink = Callable[[str], Any]
ProgressSink = Callable[[float, "str | None"], Any]
#: Told the process group of a command the attempt starts; returns an event
#: set once the batch server has recorded it (None: nothing to wait for).
ProcessSink = Callable[[int], "threading.Event | None"]


class CancelFlag:
    """A task's cancel flag: threading.Event's set, is_set and wait, cheaper to make.

    A batch server makes one per attempt, thousands a second with short tasks;
    an Event builds a Condition and its lock each time (a fifth of the loop's
    time with no-op tasks, issue 17). This one makes its Event only when
    someone waits on it.
    """

    __slots__ = ("_flag", "_event")
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._flag = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._lock:
            self._flag = True
            event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Until set or timeout seconds; True if set (as Event.wait)."""
        with self._lock:
            if self._flag:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)


class TaskContext:
    """What one attempt of one task sees: its parameters, who it runs for, and the cancel flag.

    `log` and `progress` are safe to call from any thread; the sinks are called
    in the caller's thread, so a class that wants its log written from the
    worker thread (one database connection per thread) calls `log` there.
    """

    def __init__(
        self,
        *,
        params: dict,
        company: str,
        job_id: int,
        task_id: int,
        run_id: int,
        attempt: int,
        run_by: str,
        server: str,
        cancel_event: threading.Event | CancelFlag | None = None,
        log_sink: LogSink | None = None,
        progress_sink: ProgressSink | None = None,
        process_sink: ProcessSink | None = None,
    ) -> None:
        self.params = params
        self.company = company
        self.job_id = job_id
        self.task_id = task_id
        self.run_id = run_id
        self.attempt = attempt
        self.run_by = run_by
        self.server = server
        self.cancel_event = cancel_event if cancel_event is not None else CancelFlag()
        self.log_sink = log_sink
        self.progress_sink = progress_sink
        self.process_sink = process_sink
        self.lines: list[str] = []
        self.fraction: float | None = None
        self.progress_text: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"TaskContext(job_id={self.job_id}, task_id={self.task_id}, run_id={self.run_id}, "
            f"attempt={self.attempt}, run_by={self.run_by!r}, server={self.server!r})"
        )

    def log(self, message: str) -> None:
        """Append to the attempt's log; a message with line breaks becomes several lines."""
        text = str(message)
        lines = text.splitlines() or [""]
        with self._lock:
            for line in lines:
                self.lines.append(line)
                if self.log_sink is not None:
                    self.log_sink(line)

    def progress(self, fraction: float, text: str | None = None) -> None:
        """Report how far the attempt is, 0..1 (clamped)."""
        try:
            value = float(fraction)
        except (TypeError, ValueError):
            value = 0.0
        if math.isnan(value):
            value = 0.0
        value = min(1.0, max(0.0, value))
        with self._lock:
            self.fraction = value
            self.progress_text = text
            if self.progress_sink is not None:
                self.progress_sink(value, text)

    def process_started(self, pgid: int) -> None:
        """Report the process group of a command this attempt starts, before it runs.

        Returns once the batch server has recorded it on the attempt, so that
        a server that takes the attempt back (after this one died or stalled)
        finds the group and stops it before the task runs again. Raises
        `TaskCanceled` if the attempt is canceled first (or its server finds
        the attempt is no longer its own): the command must then not run.
        Any thread may call it.
        """
        if self.process_sink is None:
            return
        recorded = self.process_sink(int(pgid))
        if recorded is None:
            return
        while not recorded.wait(0.05):
            if self.cancel_event.is_set():
                raise TaskCanceled("canceled before the command started")

    @property
    def canceled(self) -> bool:
        return self.cancel_event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as the task is canceled."""
        return self.cancel_event.wait(max(0.0, float(seconds)))

    def check_canceled(self) -> None:
        """Raise `TaskCanceled` if a cancel was asked for: for loops that do work in steps."""
        if self.cancel_event.is_set():
            raise TaskCanceled("canceled")
