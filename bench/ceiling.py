"""1. Ceiling: raw SQLite commits per second on this machine.

The limit the database sets: one transaction per commit, each updating one
row, with the pragmas batchtui opens SQLite with (batchtui/db.py: WAL,
synchronous=NORMAL, a busy timeout) and its write transactions (BEGIN
IMMEDIATE). No ORM, no batch server: what the hardware and SQLite allow.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import Row, child_main, plain, progress, run_child

_measured: float | None = None


def commits_per_second(folder: str, seconds: float) -> dict:
    """Child: as many one-row UPDATE transactions as fit in `seconds`."""
    conn = sqlite3.connect(Path(folder) / "ceiling.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=15000")
    conn.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
    conn.execute("INSERT INTO counter VALUES (1, 0)")
    commits = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE counter SET value = value + 1 WHERE id = 1")
            conn.execute("COMMIT")
        commits += 100
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    (value,) = conn.execute("SELECT value FROM counter").fetchone()
    assert value == commits
    conn.close()
    return {"commits": commits, "seconds": elapsed, "per_second": commits / elapsed}


def measure(quick: bool) -> float:
    """Commits per second, measured once per run and shared with the throughput benchmark."""
    global _measured
    if _measured is None:
        progress("ceiling: raw SQLite one-row commits (WAL, synchronous=NORMAL)")
        with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
            result = run_child("ceiling", "commits_per_second", folder=folder, seconds=1.0 if quick else 3.0)
        _measured = result["per_second"]
    return _measured


def run(quick: bool) -> list[Row]:
    return [plain("ceiling: SQLite one-row commits (WAL, synchronous=NORMAL)", measure(quick), "commits/s")]


if __name__ == "__main__":
    child_main({"commits_per_second": commits_per_second})
