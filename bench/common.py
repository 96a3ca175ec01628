"""What every benchmark shares: the result row, child processes, percentiles.

Each measured system runs in a fresh child process (``python -m bench.MODULE
ENTRY JSON-ARGS``), so that one system's memory, threads and imports never
weigh on another's figures. A child prints its result as one JSON line
starting with ``BENCH-RESULT``; everything else it prints goes to stderr as
progress.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
RESULT_MARK = "BENCH-RESULT "


@dataclass
class Row:
    """One figure of the table, with the peer or limit it is compared with."""

    name: str
    value: float | None
    unit: str
    peer: str = ""  # the peer or limit, measured in the same run (or a fixed target)
    peer_value: float | None = None
    ratio: float | None = None  # value / peer_value
    target: str = ""  # e.g. ">= 5x", "<= 1x", "< 5 ms"
    met: bool | None = None  # None: no target
    note: str = ""  # e.g. "skipped: console not available"


def versus(name: str, value: float, unit: str, peer: str, peer_value: float, *,
           at_least: float | None = None, at_most: float | None = None, note: str = "") -> Row:
    """A figure against a peer or limit measured in the same run; the target is on the ratio."""
    ratio = value / peer_value if peer_value else None
    target, met = "", None
    if at_least is not None:
        target = f">= {at_least:g}x"
        met = ratio is not None and ratio >= at_least
    elif at_most is not None:
        target = f"<= {at_most:g}x"
        met = ratio is not None and ratio <= at_most
    return Row(name, value, unit, peer, peer_value, ratio, target, met, note)


def within(name: str, value: float, unit: str, limit: float, *, peer: str = "target",
           higher_is_better: bool = False, note: str = "") -> Row:
    """A figure against a fixed limit (a target from the issue, not a measurement)."""
    ratio = value / limit if limit else None
    if higher_is_better:
        target, met = f">= {fmt(limit)} {unit}", value >= limit
    else:
        target, met = f"< {fmt(limit)} {unit}", value < limit
    return Row(name, value, unit, peer, limit, ratio, target, met, note)


def plain(name: str, value: float, unit: str, note: str = "") -> Row:
    """A figure shown for information, with nothing to compare it with."""
    return Row(name, value, unit, note=note)


def skipped(name: str, why: str) -> Row:
    return Row(name, None, "", note=f"skipped: {why}")


# -- progress and numbers ----------------------------------------------------------


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout keeps only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2g}"


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0..100), by the nearest-rank method."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or its waited-for children), in MB (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


# -- child processes ------------------------------------------------------------


def run_child(module: str, entry: str, timeout: float = 3600, env: dict | None = None, root: str | None = None,
              **kwargs) -> dict:
    """Run ``entry(**kwargs)`` of bench.MODULE in a fresh Python process; return its result dict.

    root: another checkout to run it in (its batchtui, and its bench/), e.g. the code before a change
    measured side by side with the code after it (bench/peers.py, BENCH_BASE)."""
    child_env = dict(os.environ)
    top = str(root or ROOT)
    child_env["PYTHONPATH"] = top if root else os.pathsep.join(filter(None, [top, child_env.get("PYTHONPATH")]))
    child_env.update(env or {})
    cmd = [sys.executable, "-m", f"bench.{module}", entry, json.dumps(kwargs)]
    proc = subprocess.run(cmd, cwd=top, env=child_env, stdout=subprocess.PIPE, stderr=None,
                          text=True, timeout=timeout)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            result = json.loads(line[len(RESULT_MARK):])
        else:
            print(line, file=sys.stderr)
    if proc.returncode != 0 or result is None:
        raise RuntimeError(f"bench.{module} {entry} failed (exit {proc.returncode}); see its stderr above")
    return result


def child_main(entries: dict[str, Callable[..., dict]]) -> None:
    """The ``if __name__ == "__main__"`` of a benchmark module: run one entry, print its result."""
    name, args = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    result = entries[name](**args)
    print(RESULT_MARK + json.dumps(result), flush=True)
