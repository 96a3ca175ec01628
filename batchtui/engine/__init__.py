"""The batch server: picks up due jobs, runs their tasks, retries, alerts.

Textual-free: it runs in a thread inside the console and headless as
``batchtui server``. See ``server.BatchServerEngine``; every statement it
runs is in ``store.EngineStore``. The package imports its server lazily, so
that the operator transitions can use the store without loading the
worker pool and the batch classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import BatchServerEngine, serve

__all__ = ["BatchServerEngine", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
