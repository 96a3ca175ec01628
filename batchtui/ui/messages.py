"""Messages between the engine, the app and the screens: past tense, small."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class JobsChanged(Message):
    """Statuses or jobs changed (the engine, another process, or this console)."""

    def can_replace(self, message: Message) -> bool:
        # A burst of engine changes needs one refresh only.
        return isinstance(message, JobsChanged)


@dataclass
class AlertRaised(Message):
    """A new alert for the acting user arrived in the Action center."""

    alert_id: int
    message: str
    popup: bool


@dataclass
class JobSaved(Message):
    """The console created or changed a job."""

    job_id: int


@dataclass
class DatabaseHealth(Message):
    """The watcher's look at the database failed (problem: why), or works again (None)."""

    problem: str | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DatabaseHealth)


@dataclass
class ReadFailed(Message):
    """A read in a worker thread failed for the database (the app reports it)."""

    error: BaseException
