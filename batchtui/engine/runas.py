"""Whose tasks a root batch server may run from a SQLite file: the file's owner's.

On SQLite nothing in the database says who wrote a row: whoever can write
the file can write a job whose Run by is any name, root included. A batch
server running as root switches to the Run-by user for a shell task
(classes/shell.py), so serving someone else's file as root would run their
rows as whoever they name. The ERP runs a task with the credentials of the
job's creator, and on SQLite the creator is whoever can write the file. So
a root server asks the file who that is, every round it starts tasks (a
file can be replaced, and the server then reconnects to the new one):

- root's own file, in folders only root may change, and writable by no
  group and no one else: every row was written by root, and root may run a
  task as anyone (as root's crontab may), so a task runs as its Run-by user;
- a file owned by another account: a task runs only if its Run by is that
  account; any other Run by is refused (the attempt ends in Error, the
  reason in its log and in the server's log). Refusing, rather than running
  the task as the owner, keeps Run by true: a task never runs as someone
  the job does not name;
- a file or folder that a group or others may write (or a folder owned by
  another account): several accounts may have written the rows. The file
  owner's tasks still run as the owner, as above; root's file then runs no
  task at all, since any of those accounts could have named root.

The rule holds for every task, not only shell tasks: every batch class runs
with the server's rights, and a class may act on its Run by.

A server that does not run as root cannot switch users (a shell task as
another user is refused there already), and on PostgreSQL the database sets
Run by from the session's role (migrations/v2_pg_guards.py): no rule here.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunByCheck", "RunByRule", "rule_for_file"]


@dataclass(frozen=True, slots=True)
class RunByRule:
    """The one Run-by user a root batch server may run tasks for (None: no one), and why."""

    only: str | None
    file: str
    shared: str | None = None  # with only None: why no Run by is trusted (who else may write the file)

    @property
    def summary(self) -> str:
        """The rule in one line, as the server says it when it starts."""
        if self.only is None:
            return f"runs as root on the database file {self.file} and runs no task from it: {self.shared}"
        return (f"runs as root on the database file {self.file}, owned by {self.only!r}: it runs only "
                f"tasks whose Run by is {self.only!r}")

    def refusal(self, run_by: str) -> str | None:
        """Why a task with this Run by is not run, or None when it may run."""
        if self.only is None:
            return (f"refused: Run by {run_by!r}: a root batch server runs no task from the database file "
                    f"{self.file}: {self.shared}, and whoever may write it could have named any Run by")
        if run_by == self.only:
            return None
        return (f"refused: Run by {run_by!r} is not {self.only!r}, the owner of the database file {self.file}: "
                "a root batch server runs only the file owner's tasks (whoever can write the file can write "
                "any Run by)")


def rule_for_file(path: str | os.PathLike[str]) -> RunByRule | None:
    """The rule for a root server on the SQLite file at path; None: no rule (any Run by may run).

    Only a process whose effective uid is 0 gets a rule.
    """
    if os.geteuid() != 0:
        return None
    file = Path(path)
    try:
        st = file.stat()
    except OSError as exc:
        return RunByRule(None, str(file), f"its owner cannot be read ({exc.strerror})")
    if st.st_uid != 0:
        return RunByRule(_user_name(st.st_uid), str(file))
    shared = _others_may_write(file, st)
    return RunByRule(None, str(file), f"it is root's, but {shared}") if shared else None


class RunByCheck:
    """rule_for_file for one server, asked every round it starts tasks, at the cost of one stat.

    The rule is looked for again when the file changes (another file in its
    place, another owner or mode) and at least every RECHECK seconds (a
    folder above changed: only root can change root's folders).
    """

    RECHECK = 5.0

    def __init__(self, path: str) -> None:
        self.path = path
        self._key: tuple[int, ...] | None = None
        self._at = 0.0
        self._rule: RunByRule | None = None

    def rule(self) -> RunByRule | None:
        if os.geteuid() != 0:
            return None
        try:
            st = os.stat(self.path)
            key: tuple[int, ...] | None = (st.st_dev, st.st_ino, st.st_uid, st.st_mode)
        except OSError:
            key = None
        now = time.monotonic()
        if key is None or key != self._key or now - self._at >= self.RECHECK:
            self._rule, self._key, self._at = rule_for_file(self.path), key, now
        return self._rule


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _others_may_write(file: Path, st: os.stat_result) -> str | None:
    """Who else but root may write root's file, or its rows through its folder; None: no one.

    The folder counts as much as the file: whoever may write the folder may
    replace the file or plant its -wal and -journal files, which SQLite
    reads as part of the database. Further up, a folder that another account
    owns or that a group or others may write (unless sticky, as /tmp) lets
    them move the whole tree aside.
    """
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{_who_writes(st)} may write it (mode {stat.S_IMODE(st.st_mode):04o})"
    folder = file.resolve().parent
    for i, d in enumerate([folder, *folder.parents]):
        try:
            ds = d.stat()
        except OSError:
            return f"its folder {d} cannot be checked"  # as if anyone could write it
        if ds.st_uid != 0:
            return f"its folder {d} belongs to {_user_name(ds.st_uid)!r}"
        sticky = i > 0 and ds.st_mode & stat.S_ISVTX
        if ds.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
            return f"{_who_writes(ds)} may write its folder {d} (mode {stat.S_IMODE(ds.st_mode):04o})"
    return None


def _who_writes(st: os.stat_result) -> str:
    if st.st_mode & stat.S_IWOTH:
        return "everyone"
    try:
        return f"group {grp.getgrgid(st.st_gid).gr_name!r}"
    except KeyError:
        return f"group {st.st_gid}"
