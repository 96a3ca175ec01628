"""ShellCommand: run a program as the job's Run-by user.

The ERP runs a batch job with the credentials of its Run-by user; this class
does the same for operating-system commands. A root batch server switches to
that user (uid, primary gid, supplementary groups) and gives the command a
fresh minimal environment, so nothing of the server's own environment (which
may hold database passwords) leaks into it. A server running as an ordinary
user only runs commands for that same user, and refuses the others.

The command runs in its own session, so its process group holds it and every
child it starts: cancel and timeout stop the whole group, and so does the end
of the command (background processes it left behind are stopped, as systemd
and Slurm do). The exited leader is reaped only after that, so its pid, which
is the group's id, cannot be reused by another process while we signal it.

No task twice at once (issue #16). The command does not outlive the batch
server and is never out of its sight:

- It gets a parent-death signal (SIGKILL, Linux): when the server dies, the
  kernel kills the command (what it started in turn is stopped with its
  process group by whoever takes the attempt back).
- It starts only once its process group is recorded on the attempt
  (``ctx.process_started``): between fork and exec the child waits on a
  pipe (``_Gate``) while the server writes the group down. A server that
  takes the attempt back thus always knows which group to stop first; a
  server that can no longer write (declared dead, database gone) never
  starts the command at all.

Both happen in Popen's ``preexec_fn``, which runs after Popen has switched
to the Run-by user (setgroups, setregid, setreuid): a death signal set
before a change of user would be cleared by it.
"""

from __future__ import annotations

import codecs
import os
import pwd
import queue
import select
import shlex
import signal
import subprocess
import threading
import time
from typing import Any, ClassVar

from batchtui import procs
from batchtui.classes.base import (
    REQUIRED,
    BatchClass,
    BatchClassError,
    Param,
    TaskCanceled,
    TaskContext,
)

__all__ = ["ShellCommand"]

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"

_EOF = object()


class ShellCommand(BatchClass):
    name = "ShellCommand"
    # Its command starts only once its process group, and with it the attempt's start,
    # is recorded (process_started): cut off before that, nothing of it ran.
    rerun_safe = True
    description = (
        "Runs a command as the job's Run-by user: a list directly, a text through /bin/sh -c."
    )
    params = (
        Param(
            "command",
            "text_or_list",
            REQUIRED,
            "a text runs through /bin/sh -c; a list is the program and its arguments, run directly",
        ),
        Param(
            "cwd",
            "text",
            None,
            "working folder; default: the Run-by user's home folder where it exists, else /; "
            "a relative path is taken from there",
        ),
        Param(
            "timeout",
            "number",
            None,
            "seconds after which the command is stopped and the task fails; default: none",
            minimum=0,
            exclusive_minimum=True,
        ),
    )

    # Class attributes so a subclass (or a test) can tune them.
    term_grace_seconds: ClassVar[float] = 5.0
    """After SIGTERM, how long the process group gets before SIGKILL."""
    output_grace_seconds: ClassVar[float] = 1.0
    """After the group is gone, how long to wait for the rest of the output."""
    poll_seconds: ClassVar[float] = 0.05
    """How often the run thread looks at the cancel flag, the timeout and the process."""
    max_log_bytes: ClassVar[int] = 10 * 1024 * 1024
    """Output kept in the attempt's log; the rest is counted, not kept."""

    def run(self, ctx: TaskContext) -> None:
        argv, shown, via_shell = _command_argv(ctx.params.get("command"))
        timeout = ctx.params.get("timeout")
        if timeout is not None:
            timeout = float(timeout)
            if not timeout > 0:
                raise BatchClassError(f"timeout must be more than 0 s, not {timeout:g}")
        ctx.check_canceled()

        pw = _run_by_account(ctx.run_by)
        identity = _identity_switch(pw, ctx.run_by)
        cwd = _working_folder(ctx.params.get("cwd"), pw)
        env = _minimal_environment(pw, ctx)

        _check_working_folder(cwd, identity, env, pw)

        ctx.log(f"$ {shown}    [as {pw.pw_name}, in {cwd}]")
        gate = _Gate(ctx)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                close_fds=True,
                start_new_session=True,
                preexec_fn=gate.in_child,
                **identity,
            )
        except OSError as exc:
            raise BatchClassError(_start_failure(exc, argv, cwd, pw.pw_name)) from None
        except (ValueError, TypeError) as exc:  # e.g. an embedded NUL byte
            raise BatchClassError(f"cannot start {shown!r}: {exc}") from None
        finally:
            gate.started()
        if gate.refused is not None:
            # The command never ran (the child was killed at the gate).
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            raise gate.refused

        try:
            supervisor = _Supervisor(self, ctx, proc)
        except BaseException:  # e.g. no thread could start: leave nothing running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        outcome, returncode = supervisor.supervise(timeout)

        if outcome == "canceled":
            raise TaskCanceled("canceled: the command and its process group were stopped")
        if outcome == "timeout":
            raise BatchClassError(f"timed out after {timeout:g} s")
        if returncode == 0:
            return
        if returncode < 0:
            raise BatchClassError(f"command was killed by signal {_signal_name(-returncode)}")
        hint = ""
        if via_shell and returncode == 127:
            hint = " (command not found)"
        elif via_shell and returncode == 126:
            hint = " (command not executable)"
        raise BatchClassError(f"command exited with status {returncode}{hint}")


# --------------------------------------------------------------------------- helpers


def _command_argv(command: Any) -> tuple[list[str], str, bool]:
    if isinstance(command, str):
        if not command.strip():
            raise BatchClassError("parameter 'command' is empty")
        return ["/bin/sh", "-c", command], command, True
    if isinstance(command, (list, tuple)):
        if not command or not all(isinstance(a, str) for a in command):
            raise BatchClassError("parameter 'command' must be a text or a non-empty list of texts")
        if not command[0]:
            raise BatchClassError("parameter 'command' names no program")
        return list(command), shlex.join(command), False
    raise BatchClassError("parameter 'command' is missing or is not a text or a list of texts")


def _run_by_account(run_by: str) -> pwd.struct_passwd:
    if not run_by:
        raise BatchClassError("refused: the job has no Run-by user, so a shell task cannot run")
    try:
        return pwd.getpwnam(run_by)
    except (KeyError, ValueError):
        raise BatchClassError(
            f"refused: the Run-by user {run_by!r} has no account on this machine, "
            f"so a shell task cannot run as that user"
        ) from None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _identity_switch(pw: pwd.struct_passwd, run_by: str) -> dict[str, Any]:
    """Popen arguments that make the command run as `pw`, or a refusal."""
    euid = os.geteuid()
    if euid == 0:
        return {
            "user": pw.pw_uid,
            "group": pw.pw_gid,
            "extra_groups": os.getgrouplist(pw.pw_name, pw.pw_gid),
        }
    if pw.pw_uid != euid:
        server_user = _user_name(euid)
        raise BatchClassError(
            f"refused: this batch server runs as {server_user!r} and cannot run a shell task "
            f"as {run_by!r} (run the server as root or as {run_by!r})"
        )
    return {}


def _home_or_root(pw: pwd.struct_passwd) -> str:
    home = pw.pw_dir
    return home if home and os.path.isdir(home) else "/"


def _working_folder(cwd: Any, pw: pwd.struct_passwd) -> str:
    base = _home_or_root(pw)
    if cwd is None or cwd == "":
        return base
    if not isinstance(cwd, str):
        raise BatchClassError("parameter 'cwd' must be a text")
    return os.path.join(base, cwd)


def _check_working_folder(cwd: str, identity: dict[str, Any], env: dict[str, str],
                          pw: pwd.struct_passwd) -> None:
    """Refuse a folder the Run-by user may not enter.

    subprocess changes the folder before it drops root's rights, so a root
    server would otherwise start a command in a folder its user cannot enter
    (it still could not read there, but it should not start at all). The
    kernel decides, ACLs included, in a short probe run as that user.
    """
    if not identity or identity["user"] == os.geteuid() or not os.path.isdir(cwd):
        return  # no switch, or Popen reports the missing folder itself
    try:
        probe = subprocess.run(
            ["/bin/sh", "-c", 'cd -- "$1"', "batchtui-cwd-check", cwd],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            env=env,
            close_fds=True,
            timeout=10,
            **identity,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BatchClassError(
            f"cannot start the command: checking working folder {cwd!r} as {pw.pw_name!r} failed: {exc}"
        ) from None
    if probe.returncode != 0:
        raise BatchClassError(
            f"cannot start the command: working folder {cwd!r}: {pw.pw_name!r} may not enter it"
        )


def _minimal_environment(pw: pwd.struct_passwd, ctx: TaskContext) -> dict[str, str]:
    env = {
        "HOME": pw.pw_dir or "/",
        "USER": pw.pw_name,
        "LOGNAME": pw.pw_name,
        "SHELL": pw.pw_shell or "/bin/sh",
        "PATH": SAFE_PATH,
    }
    lang = os.environ.get("LANG")
    if lang:
        env["LANG"] = lang
    # Where the command runs from, as Slurm's SLURM_JOB_ID: facts, not secrets.
    env.update(
        BATCHTUI_JOB_ID=str(ctx.job_id),
        BATCHTUI_TASK_ID=str(ctx.task_id),
        BATCHTUI_RUN_ID=str(ctx.run_id),
        BATCHTUI_ATTEMPT=str(ctx.attempt),
        BATCHTUI_COMPANY=str(ctx.company),
        BATCHTUI_SERVER=str(ctx.server),
    )
    return env


def _start_failure(exc: OSError, argv: list[str], cwd: str, user: str) -> str:
    reason = exc.strerror or str(exc)
    filename = exc.filename
    if isinstance(filename, bytes):
        filename = os.fsdecode(filename)
    if filename is not None and filename == cwd:
        return f"cannot start the command: working folder {cwd!r}: {reason}"
    if filename is None:
        return f"cannot start the command as {user!r}: {reason}"
    return f"cannot start {argv[0]!r}: {reason}"


def _signal_name(signum: int) -> str:
    try:
        return f"{signal.Signals(signum).name} ({signum})"
    except ValueError:
        return str(signum)


_group_members = procs.group_members


class _Gate:
    """Holds a command between fork and exec until the batch server has recorded its process group.

    In the child (`in_child`, Popen's preexec_fn, after the switch to the
    Run-by user): set the parent-death signal, write its pid (= its process
    group, after setsid) to one pipe, wait for one byte on another. In the
    parent a helper thread reads the pid, reports it (`ctx.process_started`,
    which returns once it is recorded) and writes the byte; if the report
    fails (canceled, the server fenced) it kills the child instead, which
    never reaches exec. Popen returns once the child has exec'd (or died), so
    the run thread waits meanwhile; its errors (a missing program, a bad
    folder) are reported as before.

    The child uses only system calls: it is a fork of a threaded process.
    """

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.parent = os.getpid()
        self.death_signal = procs.parent_death_signal(signal.SIGKILL)
        self.told_r, self.told_w = os.pipe()  # child -> parent: its pid
        self.go_r, self.go_w = os.pipe()  # parent -> child: b"g", run
        self.refused: BaseException | None = None
        self._popen_done = threading.Event()
        self._thread = threading.Thread(target=self._open, name="shell-gate", daemon=True)
        self._thread.start()

    def in_child(self) -> None:
        if self.death_signal is not None:
            self.death_signal()
        if os.getppid() != self.parent:  # the server died before the signal was set
            os._exit(125)
        os.close(self.told_r)
        os.close(self.go_w)
        os.write(self.told_w, b"%d\n" % os.getpid())
        os.close(self.told_w)
        if os.read(self.go_r, 1) != b"g":
            os._exit(125)
        os.close(self.go_r)

    def _read_pid(self) -> int | None:
        """The child's pid, as it writes it ("PID\\n"); None if Popen returned without it."""
        poller = select.poll()
        poller.register(self.told_r, select.POLLIN | select.POLLHUP)
        data = b""
        while b"\n" not in data:
            if poller.poll(50):
                chunk = os.read(self.told_r, 32)
                if not chunk:
                    break
                data += chunk
            elif self._popen_done.is_set():
                break
        text = data.strip()
        return int(text) if b"\n" in data and text.isdigit() else None

    def _open(self) -> None:
        pid = None
        try:
            pid = self._read_pid()
            if pid is None:
                return  # the child died before it got there; Popen says why
            self.ctx.process_started(pid)
            os.write(self.go_w, b"g")
        except BaseException as exc:  # noqa: BLE001  (any failure: the command must not run)
            self.refused = exc if isinstance(exc, (TaskCanceled, BatchClassError)) else BatchClassError(
                f"cannot start the command: recording its process group failed: {exc}")
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        finally:
            os.close(self.told_r)
            os.close(self.go_w)

    def started(self) -> None:
        """In the parent, once Popen has returned or raised."""
        os.close(self.told_w)
        os.close(self.go_r)
        self._popen_done.set()
        self._thread.join()


# --------------------------------------------------------------------------- supervision


class _Supervisor:
    """Watches one command: its output (helper thread), the cancel flag and the clock (run thread).

    Only the run thread calls `ctx.log`, so a log sink that writes to the
    database uses the worker thread's connection.
    """

    def __init__(self, cls: ShellCommand, ctx: TaskContext, proc: subprocess.Popen) -> None:
        self.cls = cls
        self.ctx = ctx
        self.proc = proc
        self.pgid = proc.pid  # start_new_session: the leader's pid is the group's id
        self.lines: queue.Queue = queue.Queue(maxsize=10_000)
        self.stop_reading = threading.Event()
        self.eof = False
        self.kept_bytes = 0
        self.dropped_lines = 0
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.reader = threading.Thread(
            target=self._read_output, name=f"shell-output-{proc.pid}", daemon=True
        )
        self.reader.start()

    # -- helper thread

    def _put(self, item: Any) -> bool:
        while True:
            try:
                self.lines.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self.stop_reading.is_set():
                    return False

    def _read_output(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        try:
            while not self.stop_reading.is_set():
                if not poller.poll(100):
                    continue
                data = os.read(self.fd, 65536)
                if not data:
                    break
                pending += decoder.decode(data)
                *complete, pending = pending.split("\n")
                for line in complete:
                    if not self._put(line.rstrip("\r")):
                        return
                if len(pending) > 65536:  # a very long line is kept in pieces
                    if not self._put(pending):
                        return
                    pending = ""
            pending += decoder.decode(b"", final=True)
            if pending:
                self._put(pending.rstrip("\r"))
        except OSError:
            pass
        finally:
            self._put(_EOF)

    # -- run thread

    def _emit(self, line: str) -> None:
        size = len(line.encode("utf-8", "replace")) + 1
        if self.kept_bytes + size > self.cls.max_log_bytes:
            self.dropped_lines += 1
            return
        self.kept_bytes += size
        self.ctx.log(line)

    def _drain(self, block: float) -> None:
        """Move output to the log: wait up to `block` for the first line, then at most 0.1 s more."""
        if self.eof:
            if block > 0:
                time.sleep(block)
            return
        try:
            item = self.lines.get(timeout=block) if block > 0 else self.lines.get_nowait()
        except queue.Empty:
            return
        budget = time.monotonic() + 0.1
        while True:
            if item is _EOF:
                self.eof = True
                return
            self._emit(item)
            if time.monotonic() >= budget:
                return
            try:
                item = self.lines.get_nowait()
            except queue.Empty:
                return

    def _leader_exited(self) -> bool:
        # WNOWAIT: look without reaping, so the pid (= the group id) stays ours.
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _group_alive(self) -> bool:
        members = _group_members(self.pgid)
        if members is None:
            try:
                os.killpg(self.pgid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return not self._leader_exited()
        return bool(members)

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _stop_group(self) -> None:
        """SIGTERM the group, give it `term_grace_seconds`, then SIGKILL what is left."""
        self._signal_group(signal.SIGTERM)
        self._signal_group(signal.SIGCONT)  # a stopped process must run to act on SIGTERM
        deadline = time.monotonic() + self.cls.term_grace_seconds
        while time.monotonic() < deadline:
            if not self._group_alive():
                return
            self._drain(self.cls.poll_seconds)
        self._signal_group(signal.SIGKILL)
        # SIGKILL is delivered at once but a process takes a moment to die:
        # return only when the group is gone, so "Canceled" means stopped.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and self._group_alive():
            self._drain(self.cls.poll_seconds)

    def _finish_output(self) -> None:
        deadline = time.monotonic() + self.cls.output_grace_seconds
        while not self.eof and time.monotonic() < deadline:
            self._drain(self.cls.poll_seconds)
        held_open = not self.eof
        self.stop_reading.set()
        self.reader.join(timeout=5)
        while not self.eof:
            try:
                item = self.lines.get_nowait()
            except queue.Empty:
                break
            if item is _EOF:
                self.eof = True
            else:
                self._emit(item)
        if held_open:
            self.ctx.log(
                "[batchtui] stopped reading output: a process that left the command's "
                "process group still holds it open"
            )
        if self.dropped_lines:
            self.ctx.log(
                f"[batchtui] {self.dropped_lines} more lines of output were not kept "
                f"(log limit {self.cls.max_log_bytes} bytes)"
            )

    def supervise(self, timeout: float | None) -> tuple[str, int]:
        deadline = time.monotonic() + timeout if timeout is not None else None
        outcome = "exited"
        try:
            while True:
                self._drain(self.cls.poll_seconds)
                if self._leader_exited():
                    break
                if self.ctx.cancel_event.is_set():
                    outcome = "canceled"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    outcome = "timeout"
                    break
            if outcome == "exited":
                if self._group_alive():
                    self.ctx.log(
                        "[batchtui] the command ended and left processes running in its "
                        "process group; stopping them"
                    )
                    self._stop_group()
            else:
                self._stop_group()
            returncode = self.proc.wait()
            self._finish_output()
            return outcome, returncode
        except BaseException:
            self._signal_group(signal.SIGKILL)
            self.stop_reading.set()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass  # the original exception matters more than reaping the child
            raise
        finally:
            self.stop_reading.set()
            self.reader.join(timeout=1)
            # Close only once the reader is done with the descriptor: a closed
            # number can be handed out again at once.
            if self.proc.stdout is not None and not self.reader.is_alive():
                try:
                    self.proc.stdout.close()
                except OSError:
                    pass
