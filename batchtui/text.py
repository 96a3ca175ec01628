"""Text from jobs, tasks, logs and alerts shown without letting it act on the terminal.

One rule for the command line, the console and the messages of the services:
every character that a terminal or a text layout would act on instead of
showing is replaced by a visible escape in Python's spelling (``\\x1b``,
``\\n``, ``\\u202e``, ``\\U000e0001``). That is every character of the
Unicode categories

- Cc: C0 controls (U+0000-U+001F), DEL (U+007F) and C1 controls
  (U+0080-U+009F), among them ESC, which starts terminal escape sequences;
- Cf: format characters, among them the bidirectional controls
  (U+202A-U+202E, U+2066-U+2069) that reorder what follows, and the
  invisible ones (zero-width space and joiners U+200B-U+200D, soft hyphen,
  byte order mark U+FEFF, tag characters);
- Cs: lone surrogates (text decoded with ``surrogateescape``);
- Zl, Zp: the line and paragraph separators U+2028 and U+2029, which
  ``str.splitlines`` and some terminals take as line breaks.

Where several lines are allowed (a task's log, an alert's message) newline
and tab are kept. Everything else, backslashes and every printable character
of any script included, is left as it is.

JSON output follows the same rule in JSON's spelling (``json_escaped``): the
same characters become ``\\u202e``, ``\\u009b``, ``\\ud800`` (a surrogate
pair for those beyond U+FFFF), so a script that prints a field it read from
``--json`` is as safe as the text output, and reads back the same text.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache

#: The Unicode categories whose characters are made visible.
CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: The characters kept as they are where a text may have several lines.
MULTI_LINE_KEPT = "\n\t"

_NAMED = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r"}
# Plain ASCII (most logs) needs no table: C0 and DEL, with or without newline and tab.
_ASCII = {False: re.compile("[\x00-\x1f\x7f]"), True: re.compile("[\x00-\x08\x0b-\x1f\x7f]")}


@cache
def _codes() -> tuple[int, ...]:
    """Every code point of CATEGORIES, from the running Python's Unicode database.

    Found on first use (about 0.1 s, once per process, and only for text that
    is not plain ASCII), so the set follows the Unicode version with no table
    to maintain.
    """
    return tuple(code for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) in CATEGORIES)


@cache
def _pattern(keep_newlines: bool) -> re.Pattern[str]:
    """One character class of those code points (less newline and tab with keep_newlines)."""
    kept = {ord(ch) for ch in MULTI_LINE_KEPT} if keep_newlines else set()
    ranges: list[tuple[int, int]] = []
    for code in _codes():
        if code in kept:
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    parts = [_class_char(a) if a == b else f"{_class_char(a)}-{_class_char(b)}" for a, b in ranges]
    return re.compile("[" + "".join(parts) + "]")


def _class_char(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_char(ch: str) -> str:
    """One character's visible escape: ``\\n``, ``\\x1b``, ``\\u202e`` or ``\\U000e0001``."""
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape(match: re.Match[str]) -> str:
    return escape_char(match.group(0))


def visible(text: object, *, keep_newlines: bool = False) -> str:
    """The text with every control, format, surrogate and line-separator character escaped.

    None is the empty text. With keep_newlines, newline and tab stay as they are.
    """
    if text is None:
        return ""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():  # no character of CATEGORIES (nor any other "Other" or separator but space)
        return s
    if s.isascii():
        return _ASCII[keep_newlines].sub(_escape, s)
    return _pattern(keep_newlines).sub(_escape, s)


def is_visible(text: str, *, keep_newlines: bool = False) -> bool:
    """Whether visible() would leave the text as it is."""
    return visible(text, keep_newlines=keep_newlines) == text


def json_escaped(document: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with every character of
    CATEGORIES written as a JSON escape, as ``visible`` does for text.

    json.dumps escapes C0 controls already; the rest (DEL, C1 controls, format
    characters such as U+202E, lone surrogates, U+2028 and U+2029) it writes as
    they are. Outside strings a JSON document holds only ASCII punctuation,
    digits, letters, spaces and newlines, so the whole document can be passed:
    the newlines of its indentation are kept.
    """
    if document.isascii():
        return document.replace("\x7f", "\\u007f") if "\x7f" in document else document
    return _pattern(True).sub(_json_escape, document)


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
