"""Copy batch job: the copy's description, start and company, and whether its recurrence and
alerts come along (as in the ERP's Copy dialog); tasks and conditions always do."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, Input, Label, Select, Static

from ... import validators
from ..safe_text import safe, safe_options
from ..validation import Description, WallTime, live_failure, refusal
from ..widgets.fields import chosen
from .base import OkCancelDialog


@dataclass
class CopyResult:
    description: str
    start: str | None  # ISO wall time in the job's zone, or None for the original's
    company: str | None = None  # None: the original's
    keep_recurrence: bool = True
    keep_alerts: bool = True


class CopyDialog(OkCancelDialog[CopyResult | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="copy.cancel"),
        Binding("ctrl+s,f10", "ok", "OK", id="copy.ok"),
    ]
    HELP_TITLE = "Copy batch job"
    HELP_EXTRA = [
        ("Job description", "The copy's description"),
        ("Scheduled start", "The copy's first start, in the job's time zone (empty: the original's)"),
        ("Company", "The company the copy runs in (its tasks that ran in the job's company follow)"),
        ("Keep Recurrence", "The copy repeats as the original does; untick: it runs once"),
        ("Keep Alerts", "The original's alerts come along; untick: the copy has none"),
    ]

    def __init__(self, job_id: int, description: str, start: str, time_zone: str, company: str = "",
                 companies: list[str] | None = None, has_recurrence: bool = True) -> None:
        super().__init__()
        self.job_id = job_id
        self.description = description
        self.start = start
        self.time_zone = time_zone
        self.company = company
        self.companies = list(companies or ([company] if company else []))
        if company and company not in self.companies:
            self.companies.insert(0, company)
        self.has_recurrence = has_recurrence

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog copy-dialog"):
            yield Label("Copy batch job", classes="dialog-title")
            yield Static(safe(f"Copy of batch job {self.job_id}: its tasks and conditions come along; "
                              "the copy starts in Withhold."), classes="dialog-message")
            with Horizontal(classes="form-row"):
                yield Label("Job description", classes="field-label")
                yield Input(self.description, id="copy-description", compact=True,
                            max_length=validators.MAX_DESCRIPTION, validators=[Description("Job description")],
                            valid_empty=True)
            with Horizontal(classes="form-row"):
                yield Label("Scheduled start", classes="field-label")
                yield Input(self.start, id="copy-start", placeholder="YYYY-MM-DD HH:MM", compact=True,
                            classes="start-input", validators=[WallTime("Scheduled start")], valid_empty=True)
                yield Label(safe(self.time_zone), classes="dim")
            with Horizontal(classes="form-row"):
                yield Label("Company", classes="field-label")
                yield Select(safe_options((c, c) for c in self.companies), value=self.company or Select.NULL,
                             allow_blank=not self.company, id="copy-company", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Keep", classes="field-label")
                yield Checkbox("Recurrence", self.has_recurrence, id="copy-recurrence", compact=True,
                               disabled=not self.has_recurrence)
                yield Checkbox("Alerts", True, id="copy-alerts", compact=True)
            yield Static("", id="copy-error", classes="error-line")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self.query_one("#copy-description", Input).focus()

    def action_ok(self) -> None:
        description = self.query_one("#copy-description", Input)
        start = self.query_one("#copy-start", Input)
        # The start may be left empty (the original's); the description may not.
        refused = refusal(description) or (refusal(start) if start.value.strip() else None)
        if refused is not None:
            self.query_one("#copy-error", Static).update(safe(refused))
            return
        start_text = start.value.strip()
        company = chosen(self.query_one("#copy-company", Select).value)
        self.dismiss(CopyResult(description.value.strip(),
                                validators.wall_time_text(start_text).isoformat() if start_text else None,
                                company=str(company) if company is not None else None,
                                keep_recurrence=self.query_one("#copy-recurrence", Checkbox).value,
                                keep_alerts=self.query_one("#copy-alerts", Checkbox).value))

    @on(Input.Changed)
    def _checked(self, event: Input.Changed) -> None:
        self.query_one("#copy-error", Static).update(safe(live_failure(event) or ""))

    def on_input_submitted(self) -> None:
        self.action_ok()
