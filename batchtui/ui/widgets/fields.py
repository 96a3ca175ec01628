"""Compact one-line form fields: a label and its control."""

from __future__ import annotations

from textual.widgets import Label


class FieldLabel(Label):
    """The caption in front of a field."""

    def __init__(self, text: str, *, width: int | None = None, id: str | None = None) -> None:
        super().__init__(text, id=id)
        if width is not None:
            self.styles.width = width


class ReadOnly(Label):
    """A value shown, not edited (Job ID, Status, Created by...)."""
