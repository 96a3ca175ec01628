"""Chat and webhook notices for alerts, through Apprise (the optional extra ``notify``).

Every URL of the config's ``notify_urls`` gets each alert that asks for a
notice. The URLs one alert reached already are kept on the alert
(``notify_done``, as digests: a URL may hold a token, so it is not stored),
so a retry goes only to the URLs that failed. Which alerts are sent, and
when again, is delivery.py's business.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .mail import plain, subject

log = logging.getLogger("batchtui.engine")

#: done(alert, error, permanent, reached): error None when every URL has it; reached the URL digests it reached.
NoticeDone = Callable[[Any, "str | None", bool, list[str]], None]


def digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def reached(alert: Any) -> list[str]:
    """The URL digests an alert's notice reached already (a hand-written value counts as none)."""
    try:
        value = json.loads(alert.notify_done or "[]")
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


class _Errors(logging.Handler):
    """Apprise's warnings and errors in this thread: what it says when a notice fails."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(" ".join(record.getMessage().split()))


def check_urls(urls: Sequence[str]) -> list[str]:
    """What is wrong with the config's notify_urls (empty: nothing), without showing a URL's secrets."""
    import apprise

    problems = []
    for i, url in enumerate(urls):
        if apprise.Apprise.instantiate(url) is None:
            problems.append(f"notify_urls[{i}] ({url.split('://', 1)[0]}://...) is not a URL Apprise knows")
    return problems


def send_notices(urls: Sequence[str], alerts: Sequence[Any], done: NoticeDone, in_time: Callable[[], bool]) -> None:
    """Send each alert to every URL it has not reached yet; report each alert once, to done."""
    import apprise

    plugins = [(digest(url), apprise.Apprise.instantiate(url), i) for i, url in enumerate(urls)]
    apprise_log = logging.getLogger("apprise")
    for alert in alerts:
        if not in_time():
            done(alert, "not tried: the claim's time ran out", False, reached(alert))
            continue
        got = reached(alert)
        errors = []
        for key, plugin, i in plugins:
            if key in got:
                continue
            if plugin is None:
                errors.append(f"notify_urls[{i}] is not a URL Apprise knows")
                continue
            handler = _Errors()
            apprise_log.addHandler(handler)
            try:
                ok = plugin.notify(body=plain(alert.message), title=subject(alert.message))
            except Exception as exc:  # noqa: BLE001 - a plugin's own failure is this URL's error, not the server's
                ok = False
                handler.lines.append(f"{type(exc).__name__}: {exc}")
            finally:
                apprise_log.removeHandler(handler)
            if ok:
                got.append(key)
            else:
                said = handler.lines[-1] if handler.lines else "not delivered"
                errors.append(f"{plugin.url(privacy=True)}: {said}")
        done(alert, "; ".join(errors) or None, False, got)
