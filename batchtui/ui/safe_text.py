"""Text from tasks (logs, descriptions, messages) shown as plain text.

Control characters and escape sequences are made visible ("\\x1b[31m"),
never interpreted, and nothing is read as Rich or Textual markup.
"""

from __future__ import annotations

import re

from rich.text import Text

_NAMED = {"\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v", "\a": "\\a"}
# C0 (except newline, which callers decide about), DEL, C1, and the Unicode
# characters that change the direction or visibility of what follows.
_CONTROL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)


def _escape(match: re.Match) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, *, keep_newlines: bool = False) -> str:
    """The text with every control character replaced by its visible escape."""
    if text is None:
        return ""
    s = str(text)
    if not keep_newlines:
        s = s.replace("\n", "\\n")
    return _CONTROL.sub(_escape, s)


def safe(text: object, *, keep_newlines: bool = False, style: str = "") -> Text:
    """A rich Text of visible(text): plain, never markup."""
    return Text(visible(text, keep_newlines=keep_newlines), style=style, no_wrap=not keep_newlines)


def one_line(text: object) -> str:
    """For grid cells: one line, control characters visible."""
    return visible(text, keep_newlines=False)
