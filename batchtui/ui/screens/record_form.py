"""What the record forms (Batch jobs, Batch tasks, Batch groups) share: the keys of a record,
dirty tracking, the unsaved-changes prompt, delete confirmation, and re-reading a record that
was changed since the form read it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.binding import Binding
from textual.widgets import Input

from ...errors import Conflict, UserError
from ..guard import guarded
from ..validation import live_failure
from ..widgets.paged_grid import PagedGrid
from .base import BaseScreen


def record_bindings(prefix: str, *, show_back: bool = True) -> list[Binding]:
    """The ERP's keys of a record form, with ids under prefix ("jobs.save") for keymaps."""
    return [
        Binding("ctrl+n", "new", "New", id=f"{prefix}.new"),
        Binding("ctrl+s", "save", "Save", id=f"{prefix}.save"),
        Binding("alt+f9,ctrl+delete", "delete", "Delete", key_display="Alt+F9", id=f"{prefix}.delete"),
        Binding("f5", "refresh", "Refresh", id=f"{prefix}.refresh"),
        Binding("escape", "back", "Back", show=show_back, id=f"{prefix}.back"),
    ]


class RecordForm(BaseScreen):
    """A grid of records and, below it, the form of the one under the cursor.

    A subclass says what is in its form (``form_values``), how to read a record
    into it (``reread``) and how to save it (``save``); the base knows whether
    the form holds changes, asks before they are lost, confirms a delete and,
    when a save is refused because the record changed since it was read, offers
    to read it again.
    """

    #: How messages name a record: "batch job", "task", "batch group".
    RECORD = "record"

    def __init__(self) -> None:
        super().__init__()
        self._new = False  # the form holds a record not saved yet
        self._loaded: Any = None  # the form's values as read; None: no record in the form
        self._typing_refused: str | None = None  # what the message line says of what is typed

    # -- what a subclass provides ------------------------------------------------

    def form_values(self) -> Any:
        """What the form shows now, comparable with what was loaded."""
        raise NotImplementedError

    def record_name(self) -> str:
        """The record in the form, as a sentence starts with it: "Batch job 7"."""
        return f"The new {self.RECORD}" if self._new else self.RECORD.capitalize()

    def save(self) -> bool:
        """Save the form; on a refusal say why, keep the input and return False."""
        raise NotImplementedError

    def reread(self) -> None:
        """Read the record in the form (or the one under the cursor) again, dropping edits."""
        raise NotImplementedError

    def discard(self) -> None:
        """Forget the form's edits (the next load fills it)."""
        self._new = False
        self._loaded = None

    # -- dirty tracking ----------------------------------------------------------

    def mark_loaded(self) -> None:
        self._loaded = self.form_values()

    def is_dirty(self) -> bool:
        if self._new:
            return True
        return self._loaded is not None and self.form_values() != self._loaded

    @on(Input.Changed)
    def _checked_as_typed(self, event: Input.Changed) -> None:
        """What is typed in a field its validators refuse is said at once, on the message line."""
        failure = live_failure(event)
        if failure is not None:
            self._typing_refused = failure
            self.show_message(failure)
        elif event.validation_result is not None and self._typing_refused is not None:
            if self.message_text() == self._typing_refused:  # not a later message (a save's refusal)
                self.show_message(None)
            self._typing_refused = None

    # -- asking --------------------------------------------------------------------

    def ask_unsaved(self, then: Callable[[], object], stay: Callable[[], object]) -> None:
        """The form holds changes: Save (then), Discard (then) or Keep editing (stay)."""
        from ..dialogs.confirm import ConfirmDialog

        def answered(answer: str | None) -> None:
            saved = False
            if answer == "save":
                with self.service_call("Not saved"):
                    saved = self.save()
            elif answer == "discard":
                self.discard()
            with self.service_call():
                (then if saved or answer == "discard" else stay)()

        self.app.push_screen(ConfirmDialog(
            "Unsaved changes", f"{self.record_name()} has changes that are not saved.",
            [("save", "Save"), ("discard", "Discard"), ("cancel", "Keep editing")], default="save",
        ), answered)

    def new_record(self, start: Callable[[], None]) -> None:
        """Ctrl+N: ``start`` a new record in the form, asking first when the record it shows
        has unsaved changes."""
        if self.is_dirty() and not self._new:
            self.ask_unsaved(then=start, stay=lambda: None)
            return
        start()

    def confirm_delete(self, question: str, delete: Callable[[], None]) -> None:
        """Delete only after a confirmation (Cancel is the default)."""
        from ..dialogs.confirm import ConfirmDialog

        def answered(answer: str | None) -> None:
            if answer == "delete":
                delete()

        self.app.push_screen(ConfirmDialog("Delete", question, [("delete", "Delete"), ("cancel", "Cancel")],
                                           default="cancel"), answered)

    # -- a record changed since it was read --------------------------------------------

    def refused_as_changed(self, exc: Conflict) -> None:
        """A save made from an older read (a batch server or another user changed the
        record since): not saved, the input is kept, and re-reading it is offered."""
        from ..dialogs.confirm import ConfirmDialog

        name = self.record_name()
        self.show_message(f"Not saved: {name} was changed since you opened it (by a batch server or another "
                          "user). Press F5 to re-read it (your unsaved edits are lost).")

        def answered(answer: str | None) -> None:
            if answer == "reread":
                self._reread_now(f"Re-read {name.lower()}: it shows what is saved now.")

        self.app.push_screen(ConfirmDialog(
            "Changed since you opened it",
            f"{name} was changed since you opened it (by a batch server or another user). "
            "Your changes are not saved.\n\nRe-read it: your unsaved edits are lost.",
            [("reread", "Re-read"), ("keep", "Keep editing")], default="reread",
        ), answered)

    def _reread_now(self, note: str | None = None) -> None:
        with self.service_call() as call:
            self.discard()
            self.reread()
        if call.ok and note:
            self.show_message(note, "note")

    # -- the keys --------------------------------------------------------------------

    def action_save(self) -> None:
        with self.service_call("Not saved"):
            self.save()

    def action_refresh(self) -> None:
        """F5: the grid and the record read again; a form with changes asks first."""
        from ..dialogs.confirm import ConfirmDialog

        with self.service_call():
            self.refresh_lists()
            if not self.is_dirty():
                self.reread()
                return
        if not self.is_dirty():
            return

        def answered(answer: str | None) -> None:
            if answer == "reread":
                self._reread_now()

        name = self.record_name()
        self.app.push_screen(ConfirmDialog(
            "Refresh", f"{name} has changes that are not saved.\n\nRe-read it: your unsaved edits are lost.",
            [("reread", "Re-read"), ("keep", "Keep editing")], default="keep",
        ), answered)

    def refresh_lists(self) -> None:
        """F5: what the form's lists and grid show, read again (the record is the caller's)."""

    # -- the record under the cursor -------------------------------------------------

    @property
    def grid(self) -> PagedGrid:
        raise NotImplementedError

    @property
    def current_key(self) -> Any:
        """The key of the record the form shows (None: none, or a new one)."""
        raise NotImplementedError

    def load_record(self, key: Any) -> None:
        raise NotImplementedError

    def follow_cursor(self) -> None:
        """Actions work on the row under the cursor. A key pressed right after a cursor move
        (a burst of keys over SSH: Down Down h) can reach the screen before the grid's
        CursorMoved message does, while the form still shows the record the cursor left:
        load the cursor's record now. A form with changes or a new record is left as it is
        (moving away from it asks first)."""
        if self._new or self.is_dirty():
            return
        key = self.grid.cursor_key
        if key is not None and key != self.current_key:
            self.load_record(key)


class KeyedRecordForm(RecordForm):
    """A record form over one grid whose rows are keyed by the record's name (Batch groups,
    Active periods, Server configuration): moving the cursor loads the record under it,
    asking first when the form has unsaved changes."""

    _new: bool = False

    def reread(self) -> None:
        key = self.current_key
        self.load_record(key if key is not None and self.grid.move_to_key(key) else self.grid.cursor_key)

    def refresh_lists(self) -> None:
        self.grid.reload(keep_key=True)

    @guarded
    def on_paged_grid_cursor_moved(self, event: PagedGrid.CursorMoved) -> None:
        key = self.current_key
        if event.key == key and not self._new:
            return
        if self.is_dirty():
            pending = event.key
            self.ask_unsaved(then=lambda: self.load_record(pending),
                             stay=lambda: key is not None and self.grid.move_to_key(key))
            return
        self.load_record(event.key)

    def drop_new(self) -> bool:
        """Alt+F9 on a new record not saved yet: it is dropped, and the form shows the grid's record."""
        if not self._new:
            return False
        self._new = False
        self.load_record(self.grid.cursor_key)
        return True

    def confirm_and_delete(self, label: str, delete: Callable[[], object]) -> None:
        """Alt+F9 on a saved record: "Delete <label>?", then ``delete`` (a service call; its
        refusal is shown on the message line), then the grid read again."""

        def deleted() -> None:
            with self.service_call("Not deleted") as call:
                try:
                    delete()
                except UserError as exc:
                    self.show_message(str(exc))
                    return
            if call.ok:
                with self.service_call():
                    self.grid.reload(keep_key=False)
                    self.load_record(self.grid.cursor_key)
                    self.show_message(f"Deleted {label}.", "note")

        self.confirm_delete(f"Delete {label}?", deleted)

    def show_saved(self, key: Any, text: str) -> None:
        """After a save: the grid read again, the cursor and the form on the saved record."""
        self._new = False
        self.grid.reload(keep_key=False)
        self.grid.move_to_key(key)
        self.load_record(key)
        self.show_message(text, "note")

    # Escape: a form with changes asks first; then back to the grid; then back a screen.
    @guarded
    def action_back(self) -> None:
        if self.is_dirty():
            self.ask_unsaved(then=self._discarded, stay=lambda: None)
            return
        if self.focused is not self.grid:
            self.grid.focus()
            return
        self.app.pop_screen()

    def _discarded(self) -> None:
        if self._loaded is None:  # discarded (a save has read the record again)
            self.load_record(self.grid.cursor_key)
            self.show_message("Changes discarded.", "note")
        self.grid.focus()
