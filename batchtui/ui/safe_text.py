"""Text from tasks (logs, descriptions, messages) shown as plain text.

Control characters and escape sequences are made visible ("\\x1b[31m"),
never interpreted (the one rule is batchtui.text.visible), and nothing is
read as Rich or Textual markup: a job named ``Post [/EU] invoices`` would
otherwise end the console (MarkupError), and ``[@click=app.quit]here[/]``
would be a live link. Textual reads a ``str`` given to a widget, a Select
option or a notification as markup, so the console never gives it one that
holds text from the database: widgets get ``safe(...)`` (a rich Text),
grid cells ``one_line(...)`` (drawn as plain segments), the options of a
Select ``safe_options(...)``, and every toast goes through ``notify_plain``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from rich.text import Text

from ..text import visible

if TYPE_CHECKING:
    from textual.app import App
    from textual.notifications import SeverityLevel

__all__ = ["for_console", "notify_plain", "one_line", "safe", "safe_options", "visible"]

V = TypeVar("V", bound=Hashable)


# A service's message may end in a hint for the command line ("(see `batchtui classes`)",
# "(--threads, --reserved or --schedule)"): the console says what is wrong in the form's words,
# without sending the operator to a shell.
_CLI_HINT = re.compile(r"\s*\((?:[^()]*`batchtui[^()]*|[^()]*(?<![\w-])--[a-z][\w-]*[^()]*)\)")


def for_console(text: object) -> str:
    """A message for the console: command-line hints left out."""
    return _CLI_HINT.sub("", str(text))


def safe(text: object, *, keep_newlines: bool = False, style: str = "") -> Text:
    """A rich Text of visible(text): plain, never markup."""
    return Text(visible(text, keep_newlines=keep_newlines), style=style, no_wrap=not keep_newlines)


def one_line(text: object) -> str:
    """For grid cells: one line, control characters visible."""
    return visible(text, keep_newlines=False)


def safe_options(options: Iterable[tuple[object, V]]) -> list[tuple[Text, V]]:
    """The (label, value) options of a Select whose labels come from the database, as text."""
    return [(safe(label), value) for label, value in options]


def notify_plain(app: App[Any], message: object, *, title: str = "", severity: SeverityLevel = "information",
                 timeout: float | None = None) -> None:
    """The console's one way to show a toast (a pop-up alert, an error): its text as it is, never markup."""
    app.notify(visible(for_console(message)), title=visible(title), severity=severity, timeout=timeout, markup=False)
