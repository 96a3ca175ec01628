"""Change status: Withhold (stop) or Waiting (go). The caller asks the status machine."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, RadioButton, RadioSet, Static

from ...vocabulary import JOB_FINAL, RUNNING_JOB, BatchStatus
from .base import OkCancelDialog


class ChangeStatusDialog(OkCancelDialog[BatchStatus | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="status.cancel"),
        Binding("ctrl+s,f10", "ok", "OK", id="status.ok"),
    ]
    HELP_TITLE = "Change status"
    HELP_EXTRA = [
        ("Up / Down, Enter", "Choose the new status ((•) chosen, ( ) not)"),
        ("Withhold", "The scheduler leaves the job alone until it is Waiting again"),
        ("Waiting", "The scheduler starts the job at its scheduled start"),
    ]

    def __init__(self, job_id: int, current: BatchStatus) -> None:
        super().__init__()
        self.job_id = job_id
        self.current = BatchStatus(current)

    def compose(self) -> ComposeResult:
        target = BatchStatus.WAITING if self.current != BatchStatus.WAITING else BatchStatus.HOLD
        with Vertical(classes="dialog status-dialog"):
            yield Label("Change status", classes="dialog-title")
            yield Static(f"Batch job {self.job_id} is {self.current.label}.", classes="dialog-message")
            yield Label("New status", classes="group-title")
            with RadioSet(id="status-choice"):
                yield RadioButton("Withhold  (held back from the scheduler: stop)",
                                  value=target == BatchStatus.HOLD, id="status-withhold")
                yield RadioButton("Waiting  (handed to the scheduler: go)",
                                  value=target == BatchStatus.WAITING, id="status-waiting")
            note = ""
            if self.current in RUNNING_JOB:
                note = (f"The job is {self.current.label}: the batch server will refuse a change "
                        "while it runs. Use Cancel (x) to stop it.")
            elif self.current in JOB_FINAL:
                note = "Setting Waiting queues the job again."
            yield Static(note, id="status-note", classes="warning")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()

    def chosen(self) -> BatchStatus | None:
        pressed = self.query_one(RadioSet).pressed_button
        if pressed is None:
            return None
        return BatchStatus.HOLD if pressed.id == "status-withhold" else BatchStatus.WAITING

    def action_ok(self) -> None:
        target = self.chosen()
        if target is None:
            self.query_one("#status-note", Static).update("Choose Withhold or Waiting.")
            return
        self.dismiss(target)
