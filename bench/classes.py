"""Batch classes used by the benchmarks (named as ``bench.classes:Stamp`` in a task)."""

from __future__ import annotations

import time

from batchtui.classes import BatchClass, TaskContext

# time.time() when each task's code began, by task id (one process: the engine's).
STARTED: dict[int, float] = {}


class Stamp(BatchClass):
    name = "Stamp"
    description = "Records when its code starts (for the latency benchmark); otherwise a no-op."

    def run(self, ctx: TaskContext) -> None:
        STARTED[ctx.task_id] = time.time()
