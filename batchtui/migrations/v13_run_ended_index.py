"""Schema version 13: the index of runs by end time holds only runs that are over.

``job_run_ended`` (step 1) serves the history clean-up, which deletes runs
that ended before a cut-off. It also held every run still going, under
NULL: a run's start wrote an index entry and its end moved it, two index
writes more per run for the batch server (issue 17). Partial now, it is
written once, when the run ends. The clean-up's condition (``ended IS NOT
NULL AND ended < ?``) implies the index's, on both databases. Frozen.
"""

from __future__ import annotations


def apply(db, migrator) -> None:
    db.execute_sql("DROP INDEX IF EXISTS job_run_ended")
    db.execute_sql("CREATE INDEX job_run_ended ON job_run (ended) WHERE ended IS NOT NULL")
