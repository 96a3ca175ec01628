"""The footer every screen shows: the keys that work here, the others greyed out.

Textual's Footer composes itself again, key by key, whenever a screen's bindings may
have changed. On the Batch jobs page that happens as the cursor moves from a running
job to a finished one (Cancel and Run now apply or not): 39 keys removed, mounted and
styled again, 10-18 ms, in the middle of someone paging through a million jobs.

This footer rebuilds itself only when the keys it shows change (another key, label or
order). When only which keys apply has changed, it greys out or lights up those keys
in place: one class on each key that changed, nothing laid out again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import Footer as TextualFooter
from textual.widgets._footer import FooterKey

if TYPE_CHECKING:
    from textual.app import ComposeResult
    from textual.screen import Screen

# What a key looks like and does: (key, action, description, tooltip, group). Not its state.
Shape = tuple[tuple[str, str, str, str, object], ...]


class Footer(TextualFooter):
    """Textual's Footer, that greys keys in or out where they are instead of rebuilding."""

    _shape: Shape | None = None

    def _read(self) -> tuple[Shape, dict[tuple[str, str], bool]]:
        """The keys shown, and for each (key, action) whether it applies now."""
        shape: list[tuple[str, str, str, str, object]] = []
        enabled: dict[tuple[str, str], bool] = {}
        bindings = self.screen.active_bindings  # each key's check_action asked once
        for _node, binding, applies, tooltip in bindings.values():
            if binding.show:
                shape.append((binding.key, binding.action, binding.description, tooltip, binding.group))
            enabled.setdefault((binding.key, binding.action), applies)  # the command palette's key is not shown
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:  # shown at the end, if bound
            palette = bindings.get(self.app.COMMAND_PALETTE_BINDING)
            shape.append(("palette", *((palette.binding.key, palette.binding.action, palette.binding.description)
                                       if palette is not None else ("", "", "")), None))
        return tuple(shape), enabled

    def compose(self) -> ComposeResult:
        # Textual's compose reads the bindings in this same call: the shape is what it shows.
        self._shape = self._read()[0] if self._bindings_ready else None
        yield from super().compose()

    def bindings_changed(self, screen: Screen) -> None:
        if self._shape is not None and self.is_attached and screen is self.screen and screen.app.app_focus:
            shape, enabled = self._read()
            if shape == self._shape and self._grey(enabled):
                return
        super().bindings_changed(screen)

    def _grey(self, enabled: dict[tuple[str, str], bool]) -> bool:
        """Grey each key in or out; False (compose again) if a key is not as Textual 8.2 makes it."""
        keys = list(self.query(FooterKey))
        if not all(isinstance(getattr(key, "_disabled", None), bool) for key in keys):
            return False
        for key in keys:
            applies = enabled.get((key.key, key.action))
            if applies is None or key._disabled == (not applies):  # noqa: SLF001 - a click on it rings the bell
                continue
            key._disabled = not applies  # noqa: SLF001
            key.set_class(not applies, "-disabled")
        return True
