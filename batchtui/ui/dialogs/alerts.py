"""Alerts: when to tell the acting user about this job, and how."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Checkbox, Label, Static

from ..safe_text import safe
from .base import OkCancelDialog


@dataclass
class AlertSettings:
    ended: bool = False
    error: bool = False
    canceled: bool = False
    popup: bool = False
    email: bool = False

    @classmethod
    def from_row(cls, row) -> AlertSettings:
        if row is None:
            return cls()
        return cls(bool(row.ended), bool(row.error), bool(row.canceled), bool(row.popup), bool(row.email))


class AlertsDialog(OkCancelDialog[AlertSettings | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="alerts.cancel"),
        Binding("ctrl+s,f10", "ok", "OK", id="alerts.ok"),
    ]
    HELP_TITLE = "Alerts"

    def __init__(self, job_id: int, user: str, current: AlertSettings) -> None:
        super().__init__()
        self.job_id = job_id
        self.user = user
        self.current = current

    def compose(self) -> ComposeResult:
        c = self.current
        with Vertical(classes="dialog alerts-dialog"):
            yield Label("Alerts", classes="dialog-title")
            yield Static(safe(f"Batch job {self.job_id}, alerts for user {self.user}"), classes="dialog-message")
            yield Label("Alert me when the batch job", classes="group-title")
            yield Checkbox("Ended", c.ended, id="alert-ended", compact=True)
            yield Checkbox("Has an error", c.error, id="alert-error", compact=True)
            yield Checkbox("Is canceled", c.canceled, id="alert-canceled", compact=True)
            yield Label("Notify by", classes="group-title")
            yield Checkbox("Show pop-up", c.popup, id="alert-popup", compact=True)
            yield Checkbox("Send e-mail", c.email, id="alert-email", compact=True)
            yield Static("", id="alert-error-line", classes="error-line")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self.query_one("#alert-ended", Checkbox).focus()

    def result(self) -> AlertSettings:
        v = lambda wid: self.query_one(wid, Checkbox).value  # noqa: E731
        return AlertSettings(v("#alert-ended"), v("#alert-error"), v("#alert-canceled"), v("#alert-popup"),
                             v("#alert-email"))

    def action_ok(self) -> None:
        r = self.result()
        if (r.popup or r.email) and not (r.ended or r.error or r.canceled):
            self.query_one("#alert-error-line", Static).update(
                "Choose when to be alerted: Ended, Has an error or Is canceled.")
            return
        if (r.ended or r.error or r.canceled) and not (r.popup or r.email):
            self.query_one("#alert-error-line", Static).update(
                "Choose how to be alerted: Show pop-up and/or Send e-mail (alerts also go to the Action center).")
            # Allowed: the Action center lists it. Only a hint, so OK again saves.
            if not getattr(self, "_hinted", False):
                self._hinted = True
                return
        self.dismiss(r)
