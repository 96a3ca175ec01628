"""Batch job history clean-up: delete runs older than N days, optionally filtered."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, Input, Label, Static

from ..safe_text import safe
from ..validation import WholeNumber, refusal
from .base import OkCancelDialog


@dataclass
class CleanupRequest:
    older_than_days: int
    statuses: list[str] = field(default_factory=list)
    company: str | None = None
    user: str | None = None

    def describe(self) -> str:
        """What the runs have in common, in the dialog's words."""
        parts = [f"ended more than {self.older_than_days} day(s) ago"]
        if self.statuses:
            parts.append("status " + " or ".join(s.capitalize() for s in self.statuses))
        if self.company:
            parts.append(f"company {self.company}")
        if self.user:
            parts.append(f"created by {self.user}")
        return ", ".join(parts)


class CleanupDialog(OkCancelDialog[CleanupRequest | None]):
    HELP_TITLE = "Batch job history clean-up"
    HELP_EXTRA = [
        ("Older than (days)", "Runs that ended more than this many days ago"),
        ("Status of the run", "Only runs that ended so; none ticked: any"),
        ("OK", "Counts the runs that would go and asks before deleting them"),
    ]
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="cleanup.cancel"),
        Binding("ctrl+s,f10", "ok", "OK", id="cleanup.ok"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog cleanup-dialog"):
            yield Label("Batch job history clean-up", classes="dialog-title")
            with Horizontal(classes="form-row"):
                yield Label("Older than (days)", classes="field-label")
                yield Input("30", id="cleanup-days", compact=True, classes="count-input",
                            validators=[WholeNumber("Older than (days)", minimum=0)])
            yield Label("Status of the run (none: any)", classes="group-title")
            yield Checkbox("Ended", id="cleanup-ended", compact=True)
            yield Checkbox("Error", id="cleanup-error", compact=True)
            yield Checkbox("Canceled", id="cleanup-canceled", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Company", classes="field-label")
                yield Input(id="cleanup-company", placeholder="any", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Created by", classes="field-label")
                yield Input(id="cleanup-user", placeholder="any", compact=True)
            yield Static("", id="cleanup-error-line", classes="error-line")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self.query_one("#cleanup-days", Input).focus()

    def action_ok(self) -> None:
        days_field = self.query_one("#cleanup-days", Input)
        refused = refusal(days_field)
        if refused is not None:
            self.query_one("#cleanup-error-line", Static).update(safe(refused))
            return
        days = days_field.value.strip()
        statuses = [s for s in ("ended", "error", "canceled") if self.query_one(f"#cleanup-{s}", Checkbox).value]
        company = self.query_one("#cleanup-company", Input).value.strip() or None
        user = self.query_one("#cleanup-user", Input).value.strip() or None
        self.dismiss(CleanupRequest(int(days), statuses, company, user))

    def on_input_submitted(self) -> None:
        self.action_ok()
