"""Processes on this machine: whether one is alive, a process group's members,
stopping a group, and the parent-death signal.

What a batch server needs so that no task runs twice at once (issue #16):
a shell task's process group is recorded on its attempt (``group_key``);
before an attempt is taken back, the server that takes it back stops that
group (``stop_groups``) if the group lives where it can see it
(``pid_space``); a shell task's command dies with the batch server that
started it (``parent_death_signal``).

Linux: everything is read from /proc. Elsewhere the answers are coarser
(``kill(pid, 0)``; no start times, no death signal). Nothing here touches
the database or the batch server's state.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable

__all__ = [
    "pid_space", "proc_stat", "pid_alive", "group_members", "group_key", "key_space", "stop_groups",
    "parent_death_signal",
]

#: Overrides pid_space(): two processes with different values treat each
#: other's processes as being on another host. For tests (a batch server
#: "on another host" on one machine) and for hosts whose kernel hides
#: /proc/sys/kernel/random/boot_id.
PID_SPACE_ENV = "BATCHTUI_PID_SPACE"

_space: str | None = None


def pid_space() -> str:
    """Where a process id names the same process: this kernel's boot and this pid namespace.

    Two processes with the same value see the same processes, so one may
    stop the other's process groups. The host name alone would not do:
    containers on one machine may share a name without sharing processes,
    and a rebooted host reuses every pid. Without /proc it is the host name.
    """
    global _space
    override = os.environ.get(PID_SPACE_ENV)
    if override:
        return override
    if _space is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                boot = f.read().strip()
            ns = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
            _space = f"{boot}:{ns[ns.find('[') + 1:ns.rfind(']')]}"
        except OSError:
            _space = f"host:{socket.gethostname()}"
    return _space


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks after boot) of a process; None if /proc has no such process.

    The state is one letter: R, S, D, T, ... and Z for a zombie (exited, not
    yet reaped by its parent), X for one being reaped.
    """
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read()
    except (OSError, ValueError):
        return None
    # "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
    # cmajflt utime stime cutime cstime priority nice threads itrealvalue
    # starttime ...": comm may hold spaces and parentheses.
    fields = stat[stat.rfind(b")") + 2:].split()
    if len(fields) < 20:
        return None
    return fields[0].decode(), int(fields[2]), int(fields[19])


def pid_alive(pid: int) -> bool:
    """Whether a process runs with this pid; a zombie is dead (it has exited, only its exit status is left)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    stat = proc_stat(pid)
    if stat is None:
        return not os.path.isdir("/proc/self")  # no /proc: kill() is all we know
    return stat[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int] | None:
    """Live (not zombie) processes in process group `pgid`; None where /proc cannot tell."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    members = []
    for entry in entries:
        if not entry.isdigit():
            continue
        stat = proc_stat(int(entry))
        if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def group_key(pgid: int) -> str | None:
    """What proves later that `pgid` still names this group: "PID_SPACE/START" (see stop_groups).

    START is the start time of the group's leader (whose pid is the group's
    id). None if the leader is already gone.
    """
    stat = proc_stat(pgid)
    if stat is None:
        return None
    return f"{pid_space()}/{stat[2]}"


def key_space(key: str | None) -> str | None:
    """The pid space a group key was made in."""
    return key.rsplit("/", 1)[0] if key else None


def _is_ours(pgid: int, key: str | None) -> bool:
    """Whether the processes of group `pgid` now are the group that `key` recorded.

    A process group's id stays taken while any member lives, so it cannot
    be handed to another process meanwhile. Once the whole group has gone,
    the number may be reused; if the leader that holds it now started at
    another time, it is someone else's group. (Left open: a number reused
    by a new group whose own leader has gone too; its members would be
    taken for ours. That needs the old group gone, the number reused and
    the new leader gone between a server's death and the take-back.)
    """
    if not key or "/" not in key:
        return True
    stat = proc_stat(pgid)
    if stat is None:
        return True  # the leader has gone; any member left is of the recorded group
    try:
        return stat[2] == int(key.rsplit("/", 1)[1])
    except ValueError:
        return True


def _signal(pgid: int, signum: int) -> bool:
    """Signal a group; False if it is not allowed to (another user's group, not root)."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    return True


def _alive(pgid: int) -> bool:
    members = group_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_groups(groups: Iterable[tuple[int, str | None]], grace: float, poll: float = 0.02) -> dict[int, bool]:
    """Stop process groups of this pid space: SIGTERM (and SIGCONT, so a stopped one can act on it),
    up to `grace` seconds, then SIGKILL; True for each group that is gone afterwards.

    `groups` are (pgid, key) pairs as group_key made them; a group whose
    number another group holds now counts as gone, and is not signaled.
    A group still there 2 s after SIGKILL (a process stuck in the kernel,
    or another user's group and we are not root) is False.
    """
    mine = {pgid: key for pgid, key in groups if pgid > 1 and _is_ours(pgid, key)}
    if grace > 0:
        for pgid in mine:
            _signal(pgid, signal.SIGTERM)
            _signal(pgid, signal.SIGCONT)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in mine):
            time.sleep(poll)
    for pgid in mine:
        if _alive(pgid):
            _signal(pgid, signal.SIGKILL)
    # SIGKILL is delivered at once, but a process takes a moment to die.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(_alive(p) for p in mine):
        time.sleep(poll)
    return {pgid: not _alive(pgid) for pgid in mine} | {pgid: True for pgid, _ in groups if pgid not in mine}


# -- the parent-death signal ---------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


@functools.cache
def parent_death_signal(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A function to call in a child between fork and exec (Popen's preexec_fn) that
    has the kernel send it `signum` when the thread that started it ends: the
    batch server dies, its child dies with it. None where there is no such thing (not Linux).

    prctl is looked up here, in the parent: the child only calls it. The
    setting survives exec (of a program that is not set-user-ID), and is
    cleared when the child changes its user or group: Popen switches to the
    Run-by user before preexec_fn, so it is set after the switch.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int

    def set_it() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return set_it
