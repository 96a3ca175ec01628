"""Schema version 4: no task twice at once (issue #16).

- ``batch_server.epoch``: the server's fencing token. It goes up each time
  a server registers under that name and each time another server declares
  it dead. A server writes about its attempts only while its row still has
  the epoch it registered with and is not marked stopped; one that finds
  otherwise was declared dead (or replaced), stops its attempts and
  registers again.
- ``task_attempt.epoch``: the epoch of its server when the attempt was
  claimed. An attempt whose epoch is older than its server's is no longer
  anyone's: it is taken back.
- ``task_attempt.host``, ``pgid``, ``pgid_key``: where a shell task's
  command runs (host name, process group, and the pid space and leader start
  time that prove the group is still that one), recorded before the command
  starts, so that a take-back on the same machine stops the group before the
  task is Ready again.

Columns only, all nullable or with a default: rows already there keep their
meaning (an old attempt has no epoch, 0 for the comparison; a server epoch 0).
"""

from __future__ import annotations

from peewee import BigIntegerField, CharField, IntegerField
from playhouse.migrate import migrate


def apply(db, migrator) -> None:
    migrate(
        migrator.add_column("batch_server", "epoch", IntegerField(default=0)),
        migrator.add_column("task_attempt", "epoch", IntegerField(null=True)),
        migrator.add_column("task_attempt", "host", CharField(null=True, max_length=80)),
        migrator.add_column("task_attempt", "pgid", BigIntegerField(null=True)),
        migrator.add_column("task_attempt", "pgid_key", CharField(null=True, max_length=120)),
    )
