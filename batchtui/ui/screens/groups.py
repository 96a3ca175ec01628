"""Batch groups: which batch servers run the tasks of each group."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static

from ... import validators
from ...errors import UserError
from ...groups import check_may_change_groups, delete_group, group_rows, limit_text, save_group
from ..guard import guarded
from ..safe_text import one_line
from ..widgets.footer import Footer
from ..widgets.paged_grid import CallableSource, Column, GridRow, PagedGrid
from .base import Breadcrumb, MessageLine
from .record_form import KeyedRecordForm, record_bindings

GROUP_COLUMNS = [
    Column("name", "Group", 16),
    # A group that no live server serves never runs its tasks: said here, first.
    Column("live", "Live servers", 14, essential=True),
    Column("description", "Description", 24, flex=True),
    Column("servers", "Batch servers", 24, flex=True),
    Column("limit", "Max concurrent", 14, align="right"),
    Column("running", "Running now", 11, align="right"),
]


class BatchGroupsScreen(KeyedRecordForm):
    HELP_TITLE = "Batch groups"
    RECORD = "batch group"
    BINDINGS = [
        *record_bindings("groups"),
        Binding("enter", "edit", "Edit", show=False, id="groups.edit"),
        Binding("question_mark", "app.help", "Help", show=False, id="groups.help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.title = "Batch groups"
        self.group: str | None = None

    def compose(self) -> ComposeResult:
        yield Breadcrumb("System administration > Setup > Batch groups", id="breadcrumb")
        yield PagedGrid(GROUP_COLUMNS, CallableSource(self._rows), id="groups-grid")
        with Vertical(classes="record-form", id="group-form"):
            with Horizontal(classes="form-row"):
                yield Label("Group", classes="field-label")
                yield Input(id="group-name", compact=True, max_length=validators.MAX_GROUP)
            with Horizontal(classes="form-row"):
                yield Label("Description", classes="field-label")
                yield Input(id="group-description", compact=True, max_length=validators.MAX_DESCRIPTION)
            with Horizontal(classes="form-row"):
                yield Label("Batch servers", classes="field-label")
                yield Input(id="group-servers", placeholder="server names, comma separated", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Max concurrent", classes="field-label")
                yield Input(id="group-limit", placeholder="0 no limit, -1 stopped", compact=True, max_length=6,
                            classes="count-input")
                yield Label("Running now", classes="field-label-short")
                yield Label("", id="group-running", classes="read-only short")
            yield Static("Live servers None: no running batch server serves the group; its tasks wait. The "
                         "Empty batch group runs on every server unless servers are named for it.", classes="dim")
            yield MessageLine("", id="group-message")
        yield Footer()

    def _rows(self) -> list[GridRow]:
        from ...waiting import WaitingContext

        live = WaitingContext.read().servers_of  # group -> the live servers that serve it
        out = []
        for r in group_rows():
            servers = ", ".join(r["servers"]) or ("(every server)" if r["name"] == "" else "(none: never runs)")
            serving = live.get(r["name"], [])
            out.append(GridRow(r["name"], [one_line(r["name"]) or "(Empty batch group)",
                                           one_line(", ".join(serving)) if serving else "None: waits",
                                           one_line(r["description"]), one_line(servers),
                                           limit_text(r["max_concurrent"]), str(r["running"])],
                               {1: "" if serving else "bold $text-error",
                                4: "$text-error" if r["max_concurrent"] < 0 else ""}))
        return out

    @property
    def grid(self) -> PagedGrid:
        return self.query_one("#groups-grid", PagedGrid)

    @guarded
    def on_mount(self) -> None:
        self.query_one("#group-message", MessageLine).display = False
        self.grid.focus()
        self.load_record(self.grid.cursor_key)

    def _refused(self) -> bool:
        """Say so, and True, when the acting user may not change batch groups."""
        try:
            check_may_change_groups(self.actor)
        except UserError as exc:
            self.show_message(str(exc))
            return True
        return False

    def record_name(self) -> str:
        return "The new batch group" if self._new else f"Batch group {self.group or '(Empty batch group)'}"

    def form_values(self) -> tuple[str, str, str, str]:
        return (self.query_one("#group-name", Input).value, self.query_one("#group-description", Input).value,
                self.query_one("#group-servers", Input).value, self.query_one("#group-limit", Input).value.strip())

    def load_record(self, name: Any) -> None:
        self._new = False
        self.group = name
        row = next((r for r in group_rows() if r["name"] == name), None)
        values = ("", "", "", "0") if row is None else (row["name"], row["description"], ", ".join(row["servers"]),
                                                        str(row["max_concurrent"]))
        for wid, value in zip(("#group-name", "#group-description", "#group-servers", "#group-limit"), values,
                              strict=True):
            self.query_one(wid, Input).value = value
        self.set_text("#group-running", str(row["running"]) if row is not None else "")
        self.query_one("#group-name", Input).disabled = True
        self._loaded = values

    @property
    def current_key(self) -> Any:
        return self.group

    def action_new(self) -> None:
        if self._refused():
            return
        self.new_record(self._start_new)

    def _start_new(self) -> None:
        self._new = True
        self.group = None
        name = self.query_one("#group-name", Input)
        name.disabled = False
        name.value = ""
        self.query_one("#group-description", Input).value = ""
        self.query_one("#group-servers", Input).value = ""
        self.query_one("#group-limit", Input).value = "0"
        self.set_text("#group-running", "")
        self.show_message("New batch group: name, description, servers, max concurrent; Ctrl+S saves.", "note")
        name.focus()

    def action_edit(self) -> None:
        self.follow_cursor()
        self.query_one("#group-description", Input).focus()

    def save(self) -> bool:
        name, description, servers, limit = self.form_values()
        loaded_limit = self._loaded[3] if self._loaded is not None and not self._new else "0"
        try:
            save_group(name, description=description, field="Group", new=self._new,
                       servers=[s.strip() for s in servers.split(",") if s.strip()],
                       max_concurrent=None if limit == loaded_limit else (limit or "0"), actor=self.actor)
        except UserError as exc:
            self.show_message(str(exc))
            return False
        self.show_saved(name, f"Saved batch group {name or '(Empty batch group)'}.")
        return True

    @guarded
    def action_delete(self) -> None:
        if self.drop_new():
            return
        self.follow_cursor()
        name = self.group
        if name is None or self._refused():
            return
        self.confirm_and_delete(f"batch group {name or '(Empty)'}", lambda: delete_group(name, actor=self.actor))
