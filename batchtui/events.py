"""Wake-ups after a change made in this process: the embedded batch server, the
console, and on PostgreSQL the batch servers of other processes (NOTIFY)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from . import models as m

log = logging.getLogger("batchtui.events")

_listeners: list[Callable[[], None]] = []


def add_listener(callback: Callable[[], None]) -> None:
    """Called (with no arguments) after a status change made in this process."""
    _listeners.append(callback)


def remove_listener(callback: Callable[[], None]) -> None:
    if callback in _listeners:
        _listeners.remove(callback)


def changed() -> None:
    """Tell the listeners and the other processes' batch servers that something changed.

    Never raises: the change is committed already, and a wake-up that is
    lost is made up by the servers' poll.
    """
    for cb in list(_listeners):
        try:
            cb()
        except Exception:  # noqa: BLE001  (a listener's failure must not undo a committed change)
            log.exception("a change listener failed")
    try:
        from .engine.dialect import Dialect

        Dialect.of(m.database).notify()
    except Exception as exc:  # noqa: BLE001  (the servers poll anyway)
        log.debug("NOTIFY not sent: %s", exc)
