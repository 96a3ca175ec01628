"""The Batch job menu of the Batch jobs page: View tasks, History, Recurrence, Alerts,
Change status, Cancel, Run now, Rerun and Copy.

Each works on the saved job (a job with unsaved changes is saved first, as the
ERP does), opens its dialog, and saves what the dialog returns through the
services; a dialog does no I/O. When the database is away, what was entered
in the Recurrence and Alerts dialogs is kept: the dialog opens again with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ... import models as m
from ... import status as st
from ...errors import UserError
from ...vocabulary import BatchStatus
from ..format import wall
from ..safe_text import notify_plain
from .record_form import RecordForm

if TYPE_CHECKING:
    # The job service and the dialogs are imported when a menu entry is used: the Batch jobs
    # page opens without them (about 20 ms of the console's start; issue 17).
    from ..dialogs.copy import CopyResult
    from ..dialogs.recurrence import RecurrenceResult


class BatchJobMenu(RecordForm):
    """The menu's actions; the Batch jobs page provides the job in the form."""

    job_id: int | None

    def with_saved_job(self, then: Callable[[int], object]) -> None:
        raise NotImplementedError

    def _changed(self, job_id: int, note: str, *, wake: bool = False) -> None:
        """After the menu changed job_id: the grid and the form read again, the note shown."""
        if wake:
            self.console.wake_engine()
        self.grid.reload(keep_key=True)
        self.load_record(job_id)
        self.show_message(note, "note")

    def _job(self, job_id: int) -> Any:
        return m.BatchJob.get_by_id(job_id)

    # -- View tasks, View history ------------------------------------------------------

    def action_view_tasks(self) -> None:
        from .batch_tasks import BatchTasksScreen

        self.with_saved_job(lambda job_id: self.app.push_screen(BatchTasksScreen(job_id)))

    def action_audit(self) -> None:
        from .audit import AuditScreen

        self.with_saved_job(lambda job_id: self.app.push_screen(AuditScreen(job_id)))

    def action_history(self) -> None:
        from .history import HistoryScreen

        self.with_saved_job(lambda job_id: self.app.push_screen(HistoryScreen(job_id=job_id)))

    # -- Recurrence ------------------------------------------------------------------------

    def action_recurrence(self) -> None:
        self.with_saved_job(self._open_recurrence)

    def _open_recurrence(self, job_id: int) -> None:
        from ... import jobs
        from ..dialogs.recurrence import RecurrenceDialog

        job = self._job(job_id)

        def done(result: RecurrenceResult | None) -> None:
            if result is None:
                return
            with self.service_call("Recurrence not saved") as call:
                try:
                    if result.time_zone and result.time_zone != job.time_zone:
                        current = self._job(job_id)
                        jobs.update_job(job_id, actor=self.actor, version=current.version,
                                        time_zone=result.time_zone)
                    jobs.set_recurrence(job_id, result.spec, actor=self.actor)
                except UserError as exc:
                    self.show_message(str(exc))
                    return
            if call.failed:
                if result.spec is not None:  # what was entered is kept: the dialog opens again with it
                    self.app.push_screen(RecurrenceDialog(result.spec, job.scheduled_start,
                                                          result.time_zone or job.time_zone), done)
                return
            with self.service_call():
                self._changed(job_id, "Recurrence saved." if result.spec else "Recurrence removed.")

        self.app.push_screen(RecurrenceDialog(job.recurrence, job.scheduled_start, job.time_zone), done)

    # -- Alerts ------------------------------------------------------------------------------

    def action_alerts(self) -> None:
        self.with_saved_job(self._open_alerts)

    def _open_alerts(self, job_id: int) -> None:
        from ... import jobs
        from ..dialogs.alerts import AlertsDialog, AlertSettings

        row = m.JobAlert.get_or_none((m.JobAlert.job == job_id) & (m.JobAlert.user == self.user))

        def done(result: AlertSettings | None) -> None:
            if result is None:
                return
            with self.service_call("Alerts not saved") as call:
                try:
                    jobs.set_alert(job_id, actor=self.actor, alert_user=self.user, ended=result.ended,
                                   error=result.error, canceled=result.canceled, popup=result.popup,
                                   email=result.email, notify=result.notify, late=result.late)
                except UserError as exc:
                    self.show_message(str(exc))
                    return
            if call.failed:
                self.app.push_screen(AlertsDialog(job_id, self.user, result, self.actor.recipients,
                                                  self.actor.delivery), done)  # opens again with them
                return
            warnings = self.actor.delivery.warnings(email=result.email, notify=result.notify)
            if warnings:
                self.show_message("Alerts saved. Warning: " + "; ".join(warnings), "warning")
            else:
                self.show_message("Alerts saved.", "note")

        self.app.push_screen(AlertsDialog(job_id, self.user, AlertSettings.from_row(row), self.actor.recipients,
                                          self.actor.delivery), done)

    # -- Change status, Cancel -------------------------------------------------------------------

    def action_change_status(self) -> None:
        self.with_saved_job(self._open_change_status)

    def _open_change_status(self, job_id: int) -> None:
        from ..dialogs.change_status import ChangeStatusDialog

        job = self._job(job_id)

        def done(target: BatchStatus | None) -> None:
            if target is None:
                return
            with self.service_call("Status not changed") as call:
                try:
                    st.set_job_status(job_id, target, self.actor)
                except UserError as exc:
                    self.show_message(f"Change status refused: {exc}")
                    notify_plain(self.app, exc, title="Change status", severity="error")
                    return
            if call.ok:
                with self.service_call():
                    self._changed(job_id, f"Batch job {job_id} is now {BatchStatus(target).label}.", wake=True)

        self.app.push_screen(ChangeStatusDialog(job_id, BatchStatus(job.status)), done)

    def action_cancel_job(self) -> None:
        self.with_saved_job(self._confirm_cancel)

    def _confirm_cancel(self, job_id: int) -> None:
        from ..dialogs.confirm import ConfirmDialog

        def answered(answer: str | None) -> None:
            if answer != "cancel_job":
                return
            with self.service_call("Not canceled") as call:
                try:
                    st.cancel_job(job_id, self.actor)
                except UserError as exc:
                    self.show_message(f"Cancel refused: {exc}")
                    return
            if call.ok:
                with self.service_call():
                    self._changed(job_id, f"Batch job {job_id}: cancel asked for.", wake=True)

        self.app.push_screen(ConfirmDialog(
            "Cancel batch job", f"Cancel batch job {job_id}? Tasks not started will not run; "
            "running tasks are stopped.",
            [("cancel_job", "Cancel job"), ("keep", "Keep running")], default="keep"), answered)

    # -- Run now, Rerun from the failed tasks (issue 14) -------------------------------------------

    def action_run_now(self) -> None:
        self.with_saved_job(lambda job_id: self._request(job_id, st.run_now, "Run now"))

    def action_rerun(self) -> None:
        self.with_saved_job(lambda job_id: self._request(job_id, st.rerun_job, "Rerun"))

    def _request(self, job_id: int, service: Callable[..., Any], what: str) -> None:
        """Ask for a run now or a rerun; a refusal (the job runs, nothing to rerun) is one line."""
        with self.service_call(f"{what} not requested") as call:
            try:
                service(job_id, self.actor)
            except UserError as exc:
                self.show_message(f"{what} refused: {exc}")
                notify_plain(self.app, exc, title=what, severity="error")
                return
        if call.ok:
            with self.service_call():
                self._changed(job_id, f"Batch job {job_id}: {what.lower()} requested; a batch server starts it "
                                      "shortly.", wake=True)

    # -- Copy ---------------------------------------------------------------------------------------

    def action_copy(self) -> None:
        self.with_saved_job(self._open_copy)

    def _open_copy(self, job_id: int) -> None:
        from ... import jobs
        from ..dialogs.copy import CopyDialog

        job = self._job(job_id)

        def done(result: CopyResult | None) -> None:
            if result is None:
                return
            with self.service_call("Not copied") as call:
                try:
                    new = jobs.copy_job(job_id, actor=self.actor, description=result.description or None,
                                        start=result.start or None, company=result.company,
                                        keep_recurrence=result.keep_recurrence, keep_alerts=result.keep_alerts)
                except UserError as exc:
                    self.show_message(f"Copy refused: {exc}")
                    return
            if call.failed:
                return
            with self.service_call():
                self.grid.reload(keep_key=False)
                self.grid.move_to_key(new.id)
                self.load_record(self.grid.cursor_key)
                self.show_message(f"Copied batch job {job_id} to {new.id} (Withhold).", "note")

        companies = [c.id for c in m.Company.select(m.Company.id).order_by(m.Company.id)]
        self.app.push_screen(CopyDialog(job_id, job.description, wall(job.scheduled_start, job.time_zone),
                                        job.time_zone, job.company_id, companies,
                                        has_recurrence=job.recurrence is not None), done)
