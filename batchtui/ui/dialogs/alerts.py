"""Alerts: when to tell the acting user about this job, and how."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Checkbox, Label, Static

from ... import validators
from ...recipients import DeliverySetup, RecipientRefused, Recipients
from ..safe_text import safe
from .base import OkCancelDialog


@dataclass
class AlertSettings:
    ended: bool = False
    error: bool = False
    canceled: bool = False
    popup: bool = False
    email: bool = False
    notify: bool = False
    late: bool = False  # the run has not ended the job's Late after seconds after its scheduled start

    @classmethod
    def from_row(cls, row: Any) -> AlertSettings:
        if row is None:
            return cls()
        return cls(bool(row.ended), bool(row.error), bool(row.canceled), bool(row.popup), bool(row.email),
                   bool(row.notify), bool(row.late))


class AlertsDialog(OkCancelDialog[AlertSettings | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="alerts.cancel"),
        Binding("ctrl+s,f10", "ok", "OK", id="alerts.ok"),
    ]
    HELP_TITLE = "Alerts"
    HELP_EXTRA = [
        ("Space", "Tick or untick the box in focus ([X] ticked, [ ] not)"),
        ("Alert me when", "Ended, Has an error, Is canceled: the job's runs that alert you"),
        ("Notify by", "Show pop-up in the console, and the Action center (F4); Send e-mail to you"),
    ]

    def __init__(self, job_id: int, user: str, current: AlertSettings, recipients: Recipients | None = None,
                 delivery: DeliverySetup | None = None) -> None:
        super().__init__()
        self.delivery = delivery if delivery is not None else DeliverySetup()  # what the config cannot send
        self.job_id = job_id
        self.user = user
        self.current = current
        self.recipients = recipients if recipients is not None else Recipients()  # who e-mail may go to
        self._hinted = False
        self._warned: tuple[str, ...] = ()

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
            yield Checkbox("Send to chat/webhooks", c.notify, id="alert-notify", compact=True)
            yield Label("Alert me also when a run", classes="group-title")
            yield Checkbox("Is late (Late after on the job form)", c.late, id="alert-late", compact=True)
            yield Static("", id="alert-error-line", classes="error-line")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self.query_one("#alert-ended", Checkbox).focus()

    def result(self) -> AlertSettings:
        return AlertSettings(*(self.query_one(f"#alert-{name}", Checkbox).value
                               for name in ("ended", "error", "canceled", "popup", "email", "notify", "late")))

    def action_ok(self) -> None:
        r = self.result()
        line = self.query_one("#alert-error-line", Static)
        try:
            hint = validators.alert_choice(ended=r.ended, error=r.error, canceled=r.canceled, popup=r.popup,
                                           email=r.email, notify=r.notify, late=r.late)
        except validators.Invalid as exc:
            line.update(safe(exc.reason))
            return
        if r.email:
            try:
                self.recipients.address(self.user)
            except RecipientRefused as exc:  # the site does not mail there: Send e-mail cannot be chosen
                line.update(safe(f"Send e-mail: {exc}"))
                self.query_one("#alert-email", Checkbox).focus()
                return
        if hint and not self._hinted:
            # Allowed (the Action center lists it): only a hint, so OK again saves.
            self._hinted = True
            line.update(safe(hint))
            return
        warnings = tuple(self.delivery.warnings(email=r.email, notify=r.notify))
        if warnings and warnings != self._warned:
            # Saved all the same (another batch server may send it): said once, OK again saves.
            self._warned = warnings
            line.update(safe("Warning: " + "; ".join(warnings) + " (OK again saves.)"))
            return
        self.dismiss(r)
