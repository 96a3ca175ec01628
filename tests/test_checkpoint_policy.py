"""The WAL checkpoint helper never leaves the loop the sync of a fresh WAL (issue 17).

With synchronous=NORMAL the commit that writes the first frame of a WAL
begun afresh syncs the WAL's header: on a busy disk that sync held back the
jobs due in it. A WAL begun afresh gets new salts in its header (bytes
16-23), so these tests read the header to see who began it: after a quiet
checkpoint the helper has, and the writer's next commit only appends.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from batchtui import models as m
from batchtui.engine.checkpoint import Checkpointer
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus

from .conftest import job_status, make_job, wait_for


def _salts(db: Path) -> bytes:
    return (db.parent / (db.name + "-wal")).read_bytes()[16:24]


def _writer(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None, timeout=5)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # only the helper checkpoints here
    return conn


def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _commit(conn: sqlite3.Connection, value: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    conn.execute("COMMIT")


def test_after_a_quiet_checkpoint_the_writer_appends_to_a_wal_the_helper_began(tmp_path):
    db = tmp_path / "x.db"
    conn = _writer(db)
    conn.execute("CREATE TABLE t (v INTEGER)")
    helper = Checkpointer(str(db))
    helper.start()
    try:
        for round_ in range(3):
            _commit(conn, round_)
            helper.poke()
            helper.quiet_for(5.0)  # the loop sleeps with nothing due for 5 s
            assert _until(lambda n=round_ + 1: helper.restarts == n)
            begun = _salts(db)
            _commit(conn, 100 + round_)  # the next due job: appended, no new WAL, no header sync
            assert _salts(db) == begun
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 6
    finally:
        helper.stop()
        conn.close()


def test_a_loop_that_is_not_quiet_is_left_the_wal_as_it_is(tmp_path):
    """Something due within the margin: no checkpoint until COMMITS commits, no restart by the helper."""
    db = tmp_path / "x.db"
    conn = _writer(db)
    conn.execute("CREATE TABLE t (v INTEGER)")
    helper = Checkpointer(str(db), commits=1000)
    helper.start()
    try:
        salts = _salts(db)
        for i in range(20):
            _commit(conn, i)
            helper.poke()
            helper.quiet_for(0.0)  # busy: the next thing is due now
            time.sleep(0.01)
        assert helper.restarts == 0 and _salts(db) == salts
        frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames[1] > 20  # nothing was checkpointed meanwhile: the WAL kept growing
    finally:
        helper.stop()
        conn.close()


def test_a_lightly_loaded_server_has_its_wal_begun_by_the_helper(engine_factory):
    job_id, _ = make_job([{"key": "a"}], start=utcnow() + timedelta(seconds=0.5))
    engine = engine_factory(poll=5.0)
    wait_for(lambda: job_status(job_id) == BatchStatus.FINISHED and engine._checkpointer.restarts > 0, timeout=20)
    assert m.TaskAttempt.select().count() == 1
