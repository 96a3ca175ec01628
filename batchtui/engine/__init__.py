"""The batch server: picks up due jobs, runs their tasks, retries, alerts.

Textual-free: it runs in a thread inside the console and headless as
``batchtui server``. See ``server.BatchServerEngine``.
"""

from .server import BatchServerEngine, serve

__all__ = ["BatchServerEngine", "serve"]
