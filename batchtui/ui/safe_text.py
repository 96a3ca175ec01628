"""Text from tasks (logs, descriptions, messages) shown as plain text.

Control characters and escape sequences are made visible ("\\x1b[31m"),
never interpreted (the one rule is batchtui.text.visible), and nothing is
read as Rich or Textual markup.
"""

from __future__ import annotations

from rich.text import Text

from ..text import visible

__all__ = ["one_line", "safe", "visible"]


def safe(text: object, *, keep_newlines: bool = False, style: str = "") -> Text:
    """A rich Text of visible(text): plain, never markup."""
    return Text(visible(text, keep_newlines=keep_newlines), style=style, no_wrap=not keep_newlines)


def one_line(text: object) -> str:
    """For grid cells: one line, control characters visible."""
    return visible(text, keep_newlines=False)
