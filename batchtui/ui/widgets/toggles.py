"""Checkboxes and radio buttons whose state reads without colour.

Textual draws a ticked and an unticked box with the same glyph (``▐X▌``, ``▐●▌``) and tells
them apart by colour only: on a monochrome terminal, under ``NO_COLOR``, or for a
colour-blind operator they look the same. Here the glyph says it: ``[X]`` / ``[ ]`` for a
checkbox, ``(•)`` / ``( )`` for a radio button; the colours of the theme stay on top.

``install()`` applies it to every Checkbox and RadioButton of the console (the forms and
dialogs use Textual's widgets directly), once, when the app module is imported.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox, RadioButton
from textual.widgets._toggle_button import ToggleButton

TICKED = {Checkbox: "[X]", RadioButton: "(•)"}
UNTICKED = {Checkbox: "[ ]", RadioButton: "( )"}


def glyph(button: ToggleButton) -> str:
    kind = RadioButton if isinstance(button, RadioButton) else Checkbox
    return (TICKED if button.value else UNTICKED)[kind]


def _button(self: ToggleButton) -> Content:
    return Content.assemble((glyph(self), self.get_visual_style("toggle--button")))


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        ToggleButton._button = property(_button)  # type: ignore[method-assign,assignment]
        _installed = True
