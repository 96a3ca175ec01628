"""The vocabulary of batch jobs: statuses, priorities and condition types.

Each with the ERP's label and the command line's name. It imports nothing of
batchtui, so the schema, the rules, the engine and the screens all use it
without import cycles.
"""

from __future__ import annotations

from enum import IntEnum


class BatchStatus(IntEnum):
    HOLD = 0
    WAITING = 1
    EXECUTING = 2
    ERROR = 3
    FINISHED = 4
    READY = 5
    NOT_RUN = 6
    CANCELLING = 7
    CANCELED = 8

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def cli(self) -> str:
        return _CLI[self]

    @classmethod
    def from_cli(cls, text: str) -> BatchStatus:
        for status, name in _CLI.items():
            if name == text:
                return status
        raise ValueError(text)


_LABELS = {
    BatchStatus.HOLD: "Withhold",
    BatchStatus.WAITING: "Waiting",
    BatchStatus.EXECUTING: "Executing",
    BatchStatus.ERROR: "Error",
    BatchStatus.FINISHED: "Ended",
    BatchStatus.READY: "Ready",
    BatchStatus.NOT_RUN: "Didn't run",
    BatchStatus.CANCELLING: "Canceling",
    BatchStatus.CANCELED: "Canceled",
}

_CLI = {
    BatchStatus.HOLD: "withhold",
    BatchStatus.WAITING: "waiting",
    BatchStatus.EXECUTING: "executing",
    BatchStatus.ERROR: "error",
    BatchStatus.FINISHED: "ended",
    BatchStatus.READY: "ready",
    BatchStatus.NOT_RUN: "didnt_run",
    BatchStatus.CANCELLING: "canceling",
    BatchStatus.CANCELED: "canceled",
}

#: Task statuses after which a task will not change again in this run.
TASK_FINAL = frozenset({BatchStatus.FINISHED, BatchStatus.ERROR, BatchStatus.NOT_RUN, BatchStatus.CANCELED})
#: Job statuses of a run that is over.
JOB_FINAL = frozenset({BatchStatus.FINISHED, BatchStatus.ERROR, BatchStatus.CANCELED})


class ConditionStatus(IntEnum):
    """The expected status of a parent task in a condition row."""

    ENDED = 0
    ERROR = 1
    ENDED_OR_ERROR = 2

    @property
    def label(self) -> str:
        return {0: "Ended", 1: "Error", 2: "Ended or error"}[int(self)]

    @property
    def cli(self) -> str:
        return {0: "ended", 1: "error", 2: "ended_or_error"}[int(self)]

    @classmethod
    def from_cli(cls, text: str) -> ConditionStatus:
        for c in cls:
            if c.cli == text:
                return c
        raise ValueError(text)

    def met_by(self, parent: int) -> bool:
        if self is ConditionStatus.ENDED:
            return parent == BatchStatus.FINISHED
        if self is ConditionStatus.ERROR:
            return parent == BatchStatus.ERROR
        return parent in (BatchStatus.FINISHED, BatchStatus.ERROR)


class ConditionType(IntEnum):
    ALL = 0
    ANY = 1

    @property
    def label(self) -> str:
        return "All" if self is ConditionType.ALL else "Any"

    @property
    def cli(self) -> str:
        return "all" if self is ConditionType.ALL else "any"


class Priority(IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3
    RESERVED = 4

    @property
    def label(self) -> str:
        return {0: "Low", 1: "Normal", 2: "High", 3: "Critical", 4: "Reserved capacity"}[int(self)]

    @property
    def cli(self) -> str:
        return self.name.lower()

    @classmethod
    def from_cli(cls, text: str) -> Priority:
        for p in cls:
            if p.cli == text:
                return p
        raise ValueError(text)


ACTIVE_TASK = (BatchStatus.WAITING, BatchStatus.READY, BatchStatus.EXECUTING, BatchStatus.CANCELLING)
RUNNING_JOB = (BatchStatus.EXECUTING, BatchStatus.CANCELLING)

EVENT_OF = {BatchStatus.FINISHED: "ended", BatchStatus.ERROR: "error", BatchStatus.CANCELED: "canceled"}
