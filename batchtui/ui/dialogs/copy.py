"""Copy batch job: the copy's description and start; tasks, conditions and alerts come along."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static

from ..safe_text import safe
from .base import OkCancelDialog


@dataclass
class CopyResult:
    description: str
    start: str | None  # ISO wall time in the job's zone, or None for the original's


class CopyDialog(OkCancelDialog[CopyResult | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="copy.cancel"),
        Binding("ctrl+s,f10", "ok", "OK", id="copy.ok"),
    ]
    HELP_TITLE = "Copy batch job"

    def __init__(self, job_id: int, description: str, start: str, time_zone: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.description = description
        self.start = start
        self.time_zone = time_zone

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog copy-dialog"):
            yield Label("Copy batch job", classes="dialog-title")
            yield Static(safe(f"Copy of batch job {self.job_id}: its tasks, conditions and alerts come along; "
                              "the copy starts in Withhold."), classes="dialog-message")
            with Horizontal(classes="form-row"):
                yield Label("Job description", classes="field-label")
                yield Input(self.description, id="copy-description", compact=True, max_length=200)
            with Horizontal(classes="form-row"):
                yield Label("Scheduled start", classes="field-label")
                yield Input(self.start, id="copy-start", placeholder="YYYY-MM-DD HH:MM", compact=True,
                            classes="start-input")
                yield Label(safe(self.time_zone), classes="dim")
            yield Static("", id="copy-error", classes="error-line")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self.query_one("#copy-description", Input).focus()

    def action_ok(self) -> None:
        description = self.query_one("#copy-description", Input).value.strip()
        start_text = self.query_one("#copy-start", Input).value.strip()
        error = self.query_one("#copy-error", Static)
        if not description:
            error.update("Job description: enter a description for the copy.")
            return
        start = None
        if start_text:
            try:
                start = datetime.fromisoformat(start_text.replace(" ", "T", 1)).isoformat()
            except ValueError:
                error.update(safe(f"Scheduled start: {start_text!r} is not a date and time (YYYY-MM-DD HH:MM)."))
                return
        self.dismiss(CopyResult(description, start))

    def on_input_submitted(self) -> None:
        self.action_ok()
