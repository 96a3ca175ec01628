"""The task guide panel: "Create a batch job" with USMF, docked on the right.

The steps and their checks live in ``batchtui.demo.guide`` (no Textual
there). ``TaskGuide`` is the one guide of the app: it polls the database a
little more than once a second while shown, and draws the result in a
``GuidePanel`` on every (non-modal) screen the operator opens, so the guide
stays in view from Batch jobs to Batch tasks and back. Ctrl+G hides and
shows it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Footer, Static

from ...demo.guide import STEPS, GuideSession, Progress, Step
from ..outage import DB_ERRORS
from ..safe_text import notify_plain, visible

if TYPE_CHECKING:
    from ..app import BatchTuiApp

POLL_SECONDS = 0.75
#: Below this terminal width the panel is narrower, and steps aside while the operator edits a
#: field that would lie under it. It is always docked beside the form, never drawn over it: the
#: grids give it room (their flex columns narrow, their Status stays in view) and dropdowns open
#: over it cleanly.
NARROW_BELOW = 118
#: Below this terminal height the step list is one line.
SHORT_BELOW = 32
TOGGLE_KEY = "Ctrl+G"

_KEY = re.compile(r"`([^`]+)`")


def _with_keys(line: str, base: str = "") -> Text:
    """A line of instructions with its `keys` shown as keys (reverse, bold)."""
    text = Text(style=base)
    pos = 0
    for match in _KEY.finditer(line):
        text.append(line[pos:match.start()])
        text.append(f" {match.group(1)} ", style="bold reverse")
        pos = match.end()
    text.append(line[pos:])
    return text


class GuidePanel(Vertical):
    """The side panel: the steps with ticks, what to do now, the job's live state."""

    DEFAULT_CSS = """
    GuidePanel {
        dock: right;
        width: 36;
        height: 1fr;
        background: $panel;
        border-left: tall $accent;
        padding: 0 1;
    }
    /* Narrow terminals: narrower, and out of the way while the operator edits a field
       that lies under it. */
    GuidePanel.-narrow { width: 30; margin-bottom: 1; }
    GuidePanel.-narrow.-peek { display: none; }
    GuidePanel.-off { display: none; }
    GuidePanel #guide-title { text-style: bold; color: $accent; height: 1; }
    GuidePanel #guide-job { color: $text-muted; height: auto; }
    GuidePanel #guide-steps { height: auto; margin-bottom: 1; }
    GuidePanel #guide-now { height: auto; }
    GuidePanel #guide-live { height: auto; margin-top: 1; color: $text; }
    GuidePanel #guide-note { height: auto; color: $warning; }
    GuidePanel #guide-done { height: auto; color: $success; text-style: bold; }
    """

    def __init__(self, guide: TaskGuide) -> None:
        super().__init__(id="task-guide")
        self.guide = guide
        self.can_focus = False
        self._drawn: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"Task guide  [dim]{TOGGLE_KEY} hides[/]", id="guide-title")
        yield Static("Create a batch job (USMF)", id="guide-job")
        yield Static("", id="guide-steps")
        yield Static("", id="guide-done")
        yield Static("", id="guide-now")
        yield Static("", id="guide-live")
        yield Static("", id="guide-note")

    def on_mount(self) -> None:
        self.fit(self.app.size.width, self.app.size.height)
        self.watch(self.screen, "focused", self._focus_moved, init=False)
        if self.guide.progress is not None:
            self.show(self.guide.progress, self.guide.just_done)

    def on_resize(self) -> None:
        self.fit(self.app.size.width, self.app.size.height)

    def fit(self, width: int, height: int) -> None:
        """Narrow or short terminals: the narrow panel, the one-line step list."""
        narrow, short = width < NARROW_BELOW, height < SHORT_BELOW
        if (narrow, short) != (self.has_class("-narrow"), self.has_class("-short")):
            self.set_class(narrow, "-narrow")
            self.set_class(short, "-short")
            self._drawn = None
            if self.guide.progress is not None:
                self.show(self.guide.progress, self.guide.just_done)

    def _focus_moved(self, focused) -> None:
        """Narrow: step aside while the focused field lies under the panel."""
        under = False
        if focused is not None and self.has_class("-narrow"):
            width = self.styles.width.value if self.styles.width is not None else 30
            under = focused.region.x >= self.app.size.width - int(width) - 2
        self.set_class(under, "-peek")

    # -- drawing -----------------------------------------------------------------

    @property
    def compact(self) -> bool:
        return self.has_class("-short")

    def show(self, progress: Progress, just_done: Step | None = None) -> None:
        key = (progress, just_done, self.compact)
        if key == self._drawn:
            return  # an update costs a layout pass: only when something changed
        self._drawn = key
        if progress.job_id is None:
            job = Text("Create a batch job (USMF)")
        else:
            job = Text(f"Following job {progress.job_id}: {visible(progress.job_description)}")
        self.query_one("#guide-job", Static).update(job)
        self.query_one("#guide-steps", Static).update(self._steps(progress))
        current = progress.current
        done = Text()
        if just_done is not None and not progress.finished:
            done = Text(f"✓ {just_done.done_text}")
        elif progress.finished:
            done = Text("✓ Well done! You created a batch job with a recurrence, alerts, two tasks, "
                        "a condition and failure handling, and watched it run.")
        self.query_one("#guide-done", Static).update(done)
        self.query_one("#guide-now", Static).update(self._now(current))
        live = Text()
        if progress.job_id is not None and (current is None or current.number >= 8):
            live = Text("\n".join(visible(line) for line in progress.live))
        self.query_one("#guide-live", Static).update(live)
        self.query_one("#guide-note", Static).update(Text(visible(progress.note)))

    def _steps(self, progress: Progress) -> Text:
        current = progress.current
        if self.compact:
            text = Text()
            for step, ok in zip(STEPS, progress.done, strict=True):
                if ok:
                    text.append("✓", style="bold green")
                elif step is current:
                    text.append("▶", style="bold")
                else:
                    text.append("·", style="dim")
            text.append(f"  {progress.done_count} of {len(STEPS)} done")
            return text
        lines = []
        for step, ok in zip(STEPS, progress.done, strict=True):
            if ok:
                line = Text.assemble(("✓ ", "bold green"), (f"{step.number} {step.title}", "dim"))
            elif step is current:
                line = Text.assemble(("▶ ", "bold"), (f"{step.number} {step.title}", "bold"))
            else:
                line = Text(f"  {step.number} {step.title}")
            lines.append(line)
        return Text("\n").join(lines)

    def _now(self, step) -> Text:
        if step is None:
            return Text("Press F4 for the Action center, h for the job's history. "
                        f"{TOGGLE_KEY} closes this guide.", style="dim")
        head = Text(f"Step {step.number} of {len(STEPS)}: {step.title}", style="bold underline")
        lines = [head] + [_with_keys(f"• {line}") for line in step.instructions]
        return Text("\n").join(lines)


class TaskGuide:
    """The app's one task guide: the walk-through session, the poll, the panels."""

    def __init__(self, app: BatchTuiApp) -> None:
        self.app = app
        try:
            self.session = GuideSession.start(app.user)
        except DB_ERRORS:  # the database is not answering: follow from now on
            self.session = GuideSession(app.user)
        self.visible = False
        self.progress: Progress | None = None
        self.just_done: Step | None = None  # the step done last, said until the next one is done
        self._timer: Timer | None = None

    # -- showing and hiding -------------------------------------------------------

    def show(self) -> None:
        self.visible = True
        if self._timer is None:
            self.app.screen_change_signal.subscribe(self.app, self._screen_changed)
            self._timer = self.app.set_interval(POLL_SECONDS, self.poll)
        else:
            self._timer.resume()
        self.poll()
        for panel in self.panels():
            panel.remove_class("-off")
        self.attach()

    def hide(self) -> None:
        self.visible = False
        if self._timer is not None:
            self._timer.pause()
        for panel in self.panels():
            panel.add_class("-off")

    def toggle(self) -> None:
        if self.visible:
            self.hide()
            notify_plain(self.app, f"Task guide hidden: {TOGGLE_KEY} shows it again.", title="Task guide", timeout=4)
        else:
            self.show()

    # -- panels -------------------------------------------------------------------

    def panels(self):
        for screen in self.app.screen_stack:
            yield from screen.query(GuidePanel)

    def _base_screen(self) -> Screen | None:
        """The screen a panel belongs on: the topmost screen that is not a dialog."""
        for candidate in reversed(list(self.app.screen_stack)):
            if not isinstance(candidate, ModalScreen):
                return candidate
        return None

    def _screen_changed(self, screen: Screen) -> None:
        if self.visible:
            self.app.call_after_refresh(self.attach)

    def attach(self) -> None:
        """Put a panel on the screen in front (not on dialogs: they show the one beneath)."""
        if not self.visible:
            return
        screen = self._base_screen()
        if screen is None or not screen.is_mounted:
            return
        if screen.query(GuidePanel):
            return
        # Before the footer: the footer then keeps the whole width under the panel.
        footers = [child for child in screen.children if isinstance(child, Footer)]
        if footers:
            screen.mount(GuidePanel(self), before=footers[0])
        else:
            screen.mount(GuidePanel(self))

    # -- the poll -------------------------------------------------------------------

    def poll(self) -> None:
        if not self.visible:
            return
        try:
            progress = self.session.evaluate()
        except DB_ERRORS:  # a busy or closing database: next time
            return
        previous = self.progress
        if previous is not None and previous.job_id == progress.job_id:
            newly = [s for s, was, now in zip(STEPS, previous.done, progress.done, strict=True) if now and not was]
            if newly:
                self.just_done = newly[-1]
        elif progress.job_id is not None and progress.done[0]:
            if previous is not None:
                self.just_done = STEPS[0]
        self.progress = progress
        self.attach()
        width, height = self.app.size
        for panel in self.panels():
            if panel.is_mounted:
                panel.fit(width, height)  # the terminal may have changed width only
                panel.show(progress, self.just_done)


def toggle_guide(app: BatchTuiApp) -> TaskGuide:
    """Open the task guide (the first time), or hide / show it."""
    guide = app.task_guide
    if guide is None:
        guide = app.task_guide = TaskGuide(app)
        guide.show()
    else:
        guide.toggle()
    return guide


def open_guide(app: BatchTuiApp) -> TaskGuide:
    """Open the task guide, or show it if hidden; never hides it."""
    guide = app.task_guide
    if guide is None or not guide.visible:
        return toggle_guide(app)
    return guide
