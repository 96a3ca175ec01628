"""A fixed set of daemon threads that run batch class code.

Daemon threads, unlike concurrent.futures' workers, never keep the process
alive: a batch class that ignores its cancel flag cannot stop a server from
exiting once it has handed the task back.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class WorkerPool:
    def __init__(self, size: int, name: str = "batch-worker") -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{i + 1}", daemon=True)
            for i in range(size)
        ]
        for t in self._threads:
            t.start()

    def grow(self, size: int) -> None:
        """At least size threads (a pool never shrinks: an idle thread costs nothing)."""
        name = self._threads[0].name.rsplit("-", 1)[0] if self._threads else "batch-worker"
        while len(self._threads) < size:
            t = threading.Thread(target=self._loop, name=f"{name}-{len(self._threads) + 1}", daemon=True)
            self._threads.append(t)
            t.start()

    def submit(self, fn: Callable[[], None]) -> None:
        self._queue.put(fn)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)

    def _loop(self) -> None:
        while True:
            fn = self._queue.get()
            if fn is None:
                return
            try:
                fn()
            except BaseException:  # noqa: BLE001  (the runner reports its own errors; the worker lives on)
                pass
