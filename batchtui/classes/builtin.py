"""The small built-in classes: for trying the scheduler out and for tests."""

from __future__ import annotations

import time

from batchtui.classes.base import BatchClass, BatchClassError, Param, TaskCanceled, TaskContext

__all__ = ["Noop", "Sleep", "Fail", "Flaky"]


class Noop(BatchClass):
    name = "Noop"
    rerun_safe = True  # nothing outside the attempt
    description = "Ends at once."

    def run(self, ctx: TaskContext) -> None:
        return None


class Sleep(BatchClass):
    name = "Sleep"
    rerun_safe = True  # nothing outside the attempt
    description = "Waits the given number of seconds; stops promptly when canceled."
    params = (
        Param("seconds", "number", 1, "how long to wait, in seconds", minimum=0),
    )

    def run(self, ctx: TaskContext) -> None:
        seconds = float(ctx.params.get("seconds", 1))
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Wake once a second to report progress; the wait itself returns
            # the moment the cancel flag is set.
            if ctx.wait(min(remaining, 1.0)):
                raise TaskCanceled(f"canceled after {seconds - remaining:.1f} of {seconds:g} s")
            if seconds > 0:
                ctx.progress(1.0 - max(0.0, deadline - time.monotonic()) / seconds)
        if ctx.canceled:
            raise TaskCanceled("canceled")


class Fail(BatchClass):
    name = "Fail"
    rerun_safe = True  # nothing outside the attempt
    description = "Fails with the given message in its log."
    params = (
        Param("message", "text", "Failed on purpose", "the error message the task fails with"),
    )

    def run(self, ctx: TaskContext) -> None:
        raise BatchClassError(str(ctx.params.get("message", "Failed on purpose")))


class Flaky(BatchClass):
    name = "Flaky"
    rerun_safe = True  # nothing outside the attempt
    description = "Fails on its first N attempts in a run, then ends."
    params = (
        Param("failures", "integer", 1, "how many attempts of each run fail before one ends", minimum=0),
    )

    def run(self, ctx: TaskContext) -> None:
        failures = int(ctx.params.get("failures", 1))
        if ctx.attempt <= failures:
            ctx.log(f"attempt {ctx.attempt} fails on purpose (Flaky fails the first {failures} of a run)")
            raise BatchClassError(f"failed on purpose on attempt {ctx.attempt}")
        ctx.log(f"attempt {ctx.attempt} ends (Flaky failed the first {failures} of this run)")
