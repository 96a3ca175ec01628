"""Batch groups: which batch servers run the tasks of each group."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Label

from ...errors import UserError
from ...jobs import delete_group, group_rows, save_group
from ..outage import DB_ERRORS
from ..safe_text import one_line
from ..widgets.paged_grid import CallableSource, Column, GridRow, PagedGrid
from .base import BaseScreen, Breadcrumb, MessageLine

GROUP_COLUMNS = [
    Column("name", "Group", 16),
    Column("description", "Description", 24, flex=True),
    Column("servers", "Batch servers", 24, flex=True),
]


class BatchGroupsScreen(BaseScreen):
    HELP_TITLE = "Batch groups"
    BINDINGS = [
        Binding("ctrl+n", "new", "New", id="groups.new"),
        Binding("ctrl+s", "save", "Save", id="groups.save"),
        Binding("alt+f9,ctrl+delete", "delete", "Delete", key_display="Alt+F9", id="groups.delete"),
        Binding("f5", "refresh", "Refresh", id="groups.refresh"),
        Binding("escape", "back", "Back", id="groups.back"),
        Binding("enter", "edit", "Edit", show=False, id="groups.edit"),
        Binding("question_mark", "app.help", "Help", show=False, id="groups.help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.title = "Batch groups"
        self.group: str | None = None
        self._new = False
        self._loaded: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Breadcrumb("System administration > Setup > Batch groups", id="breadcrumb")
        yield PagedGrid(GROUP_COLUMNS, CallableSource(self._rows), id="groups-grid")
        with Vertical(classes="record-form", id="group-form"):
            with Horizontal(classes="form-row"):
                yield Label("Group", classes="field-label")
                yield Input(id="group-name", compact=True, max_length=40)
            with Horizontal(classes="form-row"):
                yield Label("Description", classes="field-label")
                yield Input(id="group-description", compact=True, max_length=200)
            with Horizontal(classes="form-row"):
                yield Label("Batch servers", classes="field-label")
                yield Input(id="group-servers", placeholder="server names, comma separated", compact=True)
            yield Label("A group with no server never runs; the Empty batch group runs on every server "
                        "unless servers are named for it.", classes="dim")
            yield MessageLine("", id="group-message")
        yield Footer()

    def _rows(self) -> list[GridRow]:
        out = []
        for r in group_rows():
            servers = ", ".join(r["servers"]) or ("(every server)" if r["name"] == "" else "(none: never runs)")
            out.append(GridRow(r["name"], [one_line(r["name"]) or "(Empty batch group)", one_line(r["description"]),
                                           one_line(servers)]))
        return out

    def on_mount(self) -> None:
        self.query_one("#group-message", MessageLine).display = False
        grid = self.query_one(PagedGrid)
        grid.focus()
        self._load(grid.cursor_key)

    def _values(self) -> tuple:
        return (self.query_one("#group-name", Input).value, self.query_one("#group-description", Input).value,
                self.query_one("#group-servers", Input).value)

    def _load(self, name) -> None:
        self._new = False
        self.group = name
        row = next((r for r in group_rows() if r["name"] == name), None)
        values = ("", "", "") if row is None else (row["name"], row["description"], ", ".join(row["servers"]))
        self.query_one("#group-name", Input).value = values[0]
        self.query_one("#group-name", Input).disabled = True
        self.query_one("#group-description", Input).value = values[1]
        self.query_one("#group-servers", Input).value = values[2]
        self._loaded = values

    def is_dirty(self) -> bool:
        return self._new or (self._loaded is not None and self._values() != self._loaded)

    def show_message(self, text, severity="error") -> None:
        self.query_one("#group-message", MessageLine).show(text, severity)

    def on_paged_grid_cursor_moved(self, event: PagedGrid.CursorMoved) -> None:
        if event.key == self.group and not self._new:
            return
        if self.is_dirty():
            self.show_message("Save (Ctrl+S) or discard (Escape) the changes first.")
            if self.group is not None:
                self.query_one(PagedGrid).move_to_key(self.group)
            return
        self._load(event.key)

    def action_new(self) -> None:
        self._new = True
        self.group = None
        name = self.query_one("#group-name", Input)
        name.disabled = False
        name.value = ""
        self.query_one("#group-description", Input).value = ""
        self.query_one("#group-servers", Input).value = ""
        self.show_message("New batch group: name, description, servers; Ctrl+S saves.", "note")
        name.focus()

    def action_edit(self) -> None:
        self.query_one("#group-description", Input).focus()

    def action_save(self) -> None:
        name, description, servers = self._values()
        try:
            save_group(name, description=description, field="Group", new=self._new,
                       servers=[s.strip() for s in servers.split(",") if s.strip()])
        except UserError as exc:
            self.show_message(str(exc))
            return
        except DB_ERRORS as exc:  # the database is away: the form keeps what was typed
            self.db_refused(exc)
            return
        self._new = False
        grid = self.query_one(PagedGrid)
        grid.reload(keep_key=False)
        grid.move_to_key(name)
        self._load(name)
        self.show_message(f"Saved batch group {name or '(Empty batch group)'}.", "note")

    def action_delete(self) -> None:
        from ..dialogs.confirm import ConfirmDialog

        if self._new:
            self._new = False
            self._load(self.query_one(PagedGrid).cursor_key)
            return
        name = self.group
        if name is None:
            return

        def answered(answer) -> None:
            if answer != "delete":
                return
            try:
                delete_group(name)
            except UserError as exc:
                self.show_message(str(exc))
                return
            except DB_ERRORS as exc:
                self.db_refused(exc, "Not deleted")
                return
            grid = self.query_one(PagedGrid)
            grid.reload(keep_key=False)
            self._load(grid.cursor_key)
            self.show_message(f"Deleted batch group {name}.", "note")

        self.app.push_screen(ConfirmDialog("Delete", f"Delete batch group {name or '(Empty)'}?",
                                           [("delete", "Delete"), ("cancel", "Cancel")], default="cancel"), answered)

    def action_refresh(self) -> None:
        self.query_one(PagedGrid).reload(keep_key=True)

    def action_back(self) -> None:
        if self.is_dirty():
            self._load(self.query_one(PagedGrid).cursor_key)
            self.show_message("Changes discarded.", "note")
            self.query_one(PagedGrid).focus()
            return
        if self.focused is not self.query_one(PagedGrid):
            self.query_one(PagedGrid).focus()
            return
        self.app.pop_screen()
