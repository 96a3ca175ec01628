"""Compact one-line form fields: a label and its control."""

from __future__ import annotations

from typing import Any

from textual.widgets import Label, Select
from textual.widgets._select import NoSelection


class FieldLabel(Label):
    """The caption in front of a field."""

    def __init__(self, text: str, *, width: int | None = None, id: str | None = None) -> None:
        super().__init__(text, id=id)
        if width is not None:
            self.styles.width = width


class ReadOnly(Label):
    """A value shown, not edited (Job ID, Status, Created by...)."""


def chosen(value: Any) -> Any:
    """A Select's value, or None when nothing is chosen (Textual's "no selection" marker is
    never passed on: it would reach a message as ``NoSelection``)."""
    if value is Select.NULL or value is Select.BLANK or isinstance(value, NoSelection):
        return None
    return value
