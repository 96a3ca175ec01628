"""Schema version 12: an attempt claimed ahead says so until its start is recorded.

A batch server running short tasks claims more of them than it has threads
(engine/server.py, AHEAD_UNDER): those beyond its free threads wait in its
own queue for a thread. Their attempt rows were written as started, so a
crash (SIGKILL, a lost machine) left them looking interrupted, and taking
them back used up a retry of a task that had never run: a task without
retries went to Error. Now such an attempt is written with ``queued`` set;
the server clears it when it records the attempt's real start (in the round
after the start, or with the process group of a command, which waits for
that write before it runs), or closes it. Taking back an attempt that is
still ``queued`` hands the task back Ready, no retry used.

``queued``: NULL, or 1 while the attempt is claimed ahead and not recorded as
started. Frozen.
"""

from __future__ import annotations

from peewee import IntegerField
from playhouse.migrate import migrate


def apply(db, migrator) -> None:
    migrate(migrator.add_column("task_attempt", "queued", IntegerField(null=True)))
