"""Server configuration (the ERP's Server configuration form): the batch servers, their
heartbeat and what they run now, and the settings a running server applies within its
poll interval: maximum batch threads, reserved threads, a schedule of windows, pause."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static

from ... import servers
from ...errors import UserError
from ...timeutil import machine_zone
from ..format import zoned
from ..guard import guarded
from ..safe_text import one_line, safe
from ..widgets.footer import Footer
from ..widgets.paged_grid import CallableSource, Column, GridRow, PagedGrid
from .base import Breadcrumb, MessageLine
from .record_form import KeyedRecordForm, record_bindings

# The most telling first: at 80 columns whether a server is alive and what it runs are in view.
SERVER_COLUMNS = [
    Column("name", "Server", 12, flex=True, min=6),
    Column("alive", "Alive", 6, essential=True),
    Column("running", "Running now", 11, align="right"),
    Column("threads", "Threads", 7, align="right"),
    Column("now", "Now", 4, align="right"),
    Column("reserved", "Reserved", 8, align="right"),
    Column("heartbeat", "Last heartbeat", 23),
    Column("schedule", "Schedule", 12, flex=True),
    Column("groups", "Batch groups", 12, flex=True),
    Column("host", "Host", 10),
]
ALIVE = 1


class BatchServersScreen(KeyedRecordForm):
    HELP_TITLE = "Server configuration"
    RECORD = "server configuration"
    BINDINGS = [
        *record_bindings("servers"),
        Binding("p", "pause", "Pause/resume", id="servers.pause"),
        Binding("enter", "edit", "Edit", show=False, id="servers.edit"),
        Binding("question_mark", "app.help", "Help", show=False, id="servers.help"),
    ]

    def __init__(self, now=None) -> None:
        super().__init__()
        self.title = "Server configuration"
        self._now = now  # tests freeze the clock
        self.server: str | None = None
        self._info: servers.ServerInfo | None = None

    def compose(self) -> ComposeResult:
        yield Breadcrumb("System administration > Setup > Server configuration", id="breadcrumb")
        yield PagedGrid(SERVER_COLUMNS, CallableSource(self._rows), empty_text="No batch server has run yet.",
                        id="servers-grid")
        with Vertical(classes="record-form", id="server-form"):
            with Horizontal(classes="form-row"):
                yield Label("Server", classes="field-label")
                yield Input(id="server-name", compact=True, max_length=80)
                yield Label("Status", classes="field-label-short")
                yield Label("", id="server-state", classes="read-only wide")
            with Horizontal(classes="form-row"):
                yield Label("Maximum threads", classes="field-label")
                yield Input(id="server-threads", placeholder="as started", compact=True, classes="threads-input")
                yield Label("Reserved threads", classes="field-label-short")
                yield Input(id="server-reserved", compact=True, classes="count-input")
                yield Label("Schedule", classes="field-label-short")
                yield Input(id="server-schedule", placeholder="18:00-06:00=8,06:00-18:00=2", compact=True)
            yield Static("Maximum threads empty: as the server was started. Reserved threads: for Reserved "
                        "capacity jobs only. Schedule windows: the server's time zone. p: pause.",
                        classes="dim")
            yield MessageLine("", id="server-message")
        yield Static("", id="server-detail", classes="detail")
        yield Footer()

    def _rows(self) -> list[GridRow]:
        tz = machine_zone()
        rows = []
        for s in servers.server_rows(self._now):
            groups = ", ".join(g or "(Empty)" for g in s.groups)
            alive = ("Paused" if s.paused else "Yes") if s.alive else "No"
            rows.append(GridRow(s.name, [one_line(s.name), alive, str(s.running), str(s.threads),
                                         str(s.threads_now) if s.alive else "", str(s.reserved),
                                         zoned(s.heartbeat, tz, "%Y-%m-%d %H:%M:%S"), ",".join(s.schedule),
                                         one_line(groups), one_line(s.host)],
                                {ALIVE: ("$text-warning" if s.paused else "$text-success") if s.alive else "dim"}))
        return rows

    @property
    def grid(self) -> PagedGrid:
        return self.query_one("#servers-grid", PagedGrid)

    @guarded
    def on_mount(self) -> None:
        self.query_one("#server-message", MessageLine).display = False
        self.grid.focus()
        self.load_record(self.grid.cursor_key)

    def record_name(self) -> str:
        return "The new server configuration" if self._new else f"Batch server {self.server}"

    def form_values(self) -> tuple[str, str, str, str]:
        return tuple(self.query_one(w, Input).value.strip()  # type: ignore[return-value]
                     for w in ("#server-name", "#server-threads", "#server-reserved", "#server-schedule"))

    def _fill(self, values: tuple[str, str, str, str]) -> None:
        for wid, value in zip(("#server-name", "#server-threads", "#server-reserved", "#server-schedule"), values,
                              strict=True):
            self.query_one(wid, Input).value = value

    def load_record(self, name: Any) -> None:
        self._new = False
        self.server = name
        info = next((s for s in servers.server_rows(self._now) if s.name == name), None)
        self._info = info
        values = ("", "", "", "") if info is None else (
            info.name, str(info.configured_threads) if info.configured_threads is not None else "",
            str(info.reserved), ",".join(info.schedule))
        self._fill(values)
        self.query_one("#server-name", Input).disabled = True
        self.query_one("#server-form").disabled = info is None
        self._loaded = values if info is not None else None
        self._show_state(info)
        self._detail(name)

    def _show_state(self, info: servers.ServerInfo | None) -> None:
        if info is None:
            text = ""
        elif not info.alive:
            text = "Not running" + (" (paused)" if info.paused else "")
        else:
            text = ("Paused: finishes what it runs, starts nothing" if info.paused
                    else f"Running: {info.threads_now} thread{'s' if info.threads_now != 1 else ''} now")
        self.set_text("#server-state", text)

    def _detail(self, name) -> None:
        detail = self.query_one("#server-detail", Static)
        if name is None:
            detail.update("")
            return
        tasks = servers.running_tasks(name, limit=20)
        if not tasks:
            detail.update(safe(f"{name} runs nothing now."))
            return
        lines = [f"{one_line(name)} runs now:"] + [f"  job {t.job_id} task {t.task_id}: {one_line(t.description)}"
                                                   for t in tasks]
        detail.update(safe("\n".join(lines), keep_newlines=True))

    @property
    def current_key(self) -> Any:
        return self.server

    def action_new(self) -> None:
        self.new_record(self._start_new)

    def _start_new(self) -> None:
        self._new = True
        self.server = None
        self.query_one("#server-form").disabled = False
        self._fill(("", "8", "0", ""))
        name = self.query_one("#server-name", Input)
        name.disabled = False
        self.show_message("Configure a batch server before it first runs: its name, threads; Ctrl+S saves.",
                          "note")
        name.focus()

    def action_edit(self) -> None:
        self.follow_cursor()
        self.query_one("#server-threads", Input).focus()

    def save(self) -> bool:
        name, threads, reserved, schedule = self.form_values()
        loaded = self._loaded if self._loaded is not None and not self._new else ("", "", "", "")
        try:
            servers.set_server(
                name, actor=self.actor, threads=threads or None, clear_threads=not threads and bool(loaded[1]),
                reserved=reserved or "0" if reserved != loaded[2] else None,
                schedule=schedule if schedule != loaded[3] else None)
        except UserError as exc:
            self.show_message(str(exc))
            return False
        self._new = False
        self.grid.reload(keep_key=False)
        self.grid.move_to_key(name)
        self.load_record(name)
        self.show_message(f"Saved the configuration of {name}: a running server applies it within its poll "
                          "interval.", "note")
        return True

    @guarded
    def action_pause(self) -> None:
        self.follow_cursor()
        info = self._info
        if info is None or self._new:
            return
        with self.service_call("Not changed") as call:
            try:
                servers.pause_server(info.name, actor=self.actor, paused=not info.paused)
            except UserError as exc:
                self.show_message(str(exc))
                return
        if call.ok:
            self.grid.reload(keep_key=True)
            self.load_record(info.name)
            self.show_message(f"{'Resumed' if info.paused else 'Paused'} batch server {info.name}.", "note")

    @guarded
    def action_delete(self) -> None:
        if self._new:
            self._new = False
            self.load_record(self.grid.cursor_key)
            return
        self.show_message("A batch server's row stays while it has history; pause it (p) to stop it taking work.")

    @guarded
    def jobs_changed(self) -> None:
        if self.is_mounted and not self.is_dirty() and not self._new:
            self.grid.reload(keep_key=True)
            self._info = next((s for s in servers.server_rows(self._now) if s.name == self.server), None)
            self._show_state(self._info)
            self._detail(self.grid.cursor_key)

    @guarded
    def on_tick(self) -> None:
        self.jobs_changed()
