"""Helpers for the fault, abuse and security tests.

- ``Mark``: a batch class that leaves a line in a file each time it starts,
  so a test sees which attempts really ran (and whether one ran twice).
- ``Procs``: ``batchtui server`` processes on any database URL.
- ``PausablePg``: a throw-away PostgreSQL server that can be stopped and
  started again on the same port and data.
- ``run_cli``: ``batchtui`` as a subprocess.
- ``python -m tests.faultkit operator URL OUT SECONDS``: an operator's loop of
  command-line writes, run in-process (``batchtui.cli.main``) for speed.
- ``ticker``, ``read_ticks``, ``twins``: a shell task that writes a line to a
  file every 0.1 s while it runs, and what those lines say: whether two
  attempts of one task ever ran at the same time (issue #16).
- ``stop_outside_write``: SIGSTOP a batch server at a moment it holds no
  write transaction open.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from batchtui.classes.base import BatchClass, BatchClassError, Param, TaskCanceled

from .pgserver import PgServer

ROOT = Path(__file__).resolve().parent.parent
MARK = "tests.faultkit:Mark"


class Mark(BatchClass):
    """Writes "TASK RUN ATTEMPT" to a file when it starts; may sleep and fail its first attempts."""

    name = "Mark"
    params = (
        Param("file", "text"),
        Param("seconds", "number", 0.0, minimum=0),
        Param("fail_first", "integer", 0, minimum=0),
    )

    def run(self, ctx) -> None:
        fd = os.open(ctx.params["file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{ctx.task_id} {ctx.run_id} {ctx.attempt}\n".encode())
        finally:
            os.close(fd)
        seconds = float(ctx.params.get("seconds") or 0)
        if seconds and ctx.cancel_event.wait(seconds):
            raise TaskCanceled("canceled")
        if ctx.attempt <= int(ctx.params.get("fail_first") or 0):
            raise BatchClassError(f"fails on purpose on attempt {ctx.attempt}")


def read_marks(path) -> list[tuple[int, int, int]]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [tuple(int(x) for x in line.split()) for line in text.splitlines() if line.strip()]


def env_for(url: str, **extra) -> dict:
    env = dict(os.environ, BATCHTUI_DB=url)
    env.setdefault("BATCHTUI_USER", "ops")
    env.pop("BATCHTUI_DEBUG", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(args, url: str, *, user: str = "ops", stdin: bytes | None = None, timeout: float = 60,
            prefix: list[str] | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    env = env or env_for(url, BATCHTUI_USER=user)
    return subprocess.run([*(prefix or []), sys.executable, "-m", "batchtui", *args], input=stdin,
                          capture_output=True, env=env, timeout=timeout, cwd=str(ROOT))


def assert_one_error_line(proc_or_text, *, exit_codes=(2,), rc=None):
    """stderr holds exactly one `batchtui: error:` line and no traceback."""
    if isinstance(proc_or_text, subprocess.CompletedProcess):
        rc = proc_or_text.returncode
        err = proc_or_text.stderr.decode(errors="replace")
    else:
        err = proc_or_text
    assert rc in exit_codes, (rc, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchtui: error: "), err
    return lines[0]


class Procs:
    """batchtui server processes; stopped (SIGTERM, then SIGKILL) by stop_all."""

    def __init__(self, url: str, folder: Path, prefix: list[str] | None = None, env: dict | None = None):
        self.url = url
        self.folder = Path(folder)
        self.prefix = prefix or []
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.count = 0

    def start(self, name: str, *extra: str, threads: int = 4, poll: float = 0.1) -> subprocess.Popen:
        self.count += 1
        log_path = self.folder / f"{name}.{self.count}.log"
        self.logs.setdefault(name, log_path)
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "batchtui", "server", "--name", name, "--threads",
                 str(threads), "--poll", str(poll), "--retry-base", "0", "--heartbeat", "0.5",
                 "--dead-after", "5", *extra],
                env=self.env or env_for(self.url), stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
        self.procs[name] = proc
        self.last_log = log_path
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


class PausablePg(PgServer):
    """A PgServer that can be stopped and started again (same data, same port)."""

    def start(self) -> str:
        url = super().start()
        assert self.dir is not None
        self._data = os.path.join(self.dir, "data")
        self._opts = (f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
                      "-c max_connections=100 -c synchronous_commit=off")
        return url

    def pause(self) -> None:
        self._run([self.pg_ctl, "-D", self._data, "-m", "fast", "-w", "stop"])

    def resume(self) -> None:
        self._run([self.pg_ctl, "-D", self._data, "-o", self._opts, "-l",
                   os.path.join(self.dir, "log"), "-w", "start"])


def sqlite_state(path) -> str:
    """A digest of a SQLite database's files as they are on disk (main file and WAL)."""
    h = hashlib.sha256()
    for suffix in ("", "-wal"):
        p = Path(str(path) + suffix)
        h.update(suffix.encode())
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()


def sqlite_dump(path) -> str:
    import sqlite3

    conn = sqlite3.connect(str(path))
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def call_main(argv, *, stdin: bytes = b"", user: str = "ops") -> tuple[int, str, str]:
    """batchtui.cli.main in this process, with stdin given and stdout/stderr captured."""
    from batchtui import cli

    out, err = io.StringIO(), io.StringIO()
    old_in, old_user = sys.stdin, os.environ.get("BATCHTUI_USER")
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    os.environ["BATCHTUI_USER"] = user
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(list(argv))
    finally:
        sys.stdin = old_in
        if old_user is None:
            os.environ.pop("BATCHTUI_USER", None)
        else:
            os.environ["BATCHTUI_USER"] = old_user
    return rc, out.getvalue(), err.getvalue()


# -- an operator's loop of writes (run as its own process) ----------------------------


def _operator(url: str, out_path: str, seconds: float, tag: str) -> None:
    os.environ["BATCHTUI_DB"] = url
    results = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        job = {"description": f"{tag} load {n}", "status": "waiting",
               "alerts": [{"user": "ops", "ended": True, "error": True, "popup": True}],
               "tasks": [{"key": f"t{i}", "description": f"task {i}", "class": "Sleep" if i % 3 else "Noop",
                          **({"params": {"seconds": 0.01}} if i % 3 else {}),
                          **({"conditions": [{"task": f"t{i - 1}", "status": "ended"}]} if i % 5 == 4 else {})}
                         for i in range(25)]}
        steps = [(["job", "import", "-", "--json"], json.dumps(job).encode())]
        rc, out, err = call_main(steps[0][0], stdin=steps[0][1])
        results.append({"argv": steps[0][0], "rc": rc, "err": err})
        if rc != 0:
            continue
        job_id = json.loads(out)["jobs"][0]["id"]
        for argv in (["job", "export", str(job_id)], ["job", "list", "--json"],
                     ["job", "copy", str(job_id), "--json"]):
            rc, out, err = call_main(argv)
            results.append({"argv": argv, "rc": rc, "err": err})
        if rc == 0:
            copy_id = json.loads(out)["id"]
            for argv in (["job", "status", str(copy_id), "waiting"], ["job", "history", str(job_id), "--json"],
                         ["servers", "--json"], ["alerts", "--read", "--json"]):
                rc, out, err = call_main(argv)
                results.append({"argv": argv, "rc": rc, "err": err})
        # A held copy that is deleted again at once.
        rc, out, err = call_main(["job", "copy", str(job_id), "--json"])
        results.append({"argv": ["job", "copy", str(job_id)], "rc": rc, "err": err})
        if rc == 0:
            copy_id = json.loads(out)["id"]
            rc, out, err = call_main(["job", "delete", str(copy_id)])
            results.append({"argv": ["job", "delete", str(copy_id)], "rc": rc, "err": err})
    Path(out_path).write_text(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1] == "operator":
        _operator(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "op")


# -- the console as a real process in a pseudo-terminal -----------------------------


class ConsolePty:
    """``batchtui --db URL`` (the console and its embedded batch server) in a pseudo-terminal.

    A thread drains the terminal (the app would block on a full one) and keeps
    the last output for a failure's message; ``type`` writes keys as a
    terminal does (b"\\x0e" is Ctrl+N, b"\\x13" Ctrl+S, b"\\x11" Ctrl+Q).
    """

    def __init__(self, url: str, *extra: str, size=(120, 40), env: dict | None = None):
        import fcntl
        import pty
        import struct
        import termios
        import threading

        self.master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(env or env_for(url))
        env["TERM"] = "xterm-256color"
        env.pop("TEXTUAL", None)
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "batchtui", "--db", url, *extra],
                                     stdin=slave, stdout=slave, stderr=slave, env=env, cwd=str(ROOT),
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self._out = bytearray()
        self._dropped = 0  # bytes dropped off the front of _out: offsets stay absolute
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                return
            if not data:
                return
            with self._lock:
                self._out += data
                if len(self._out) > 200_000:
                    del self._out[:100_000]
                    self._dropped += 100_000

    def output(self) -> str:
        with self._lock:
            return bytes(self._out).decode(errors="replace")

    def mark(self) -> int:
        """An absolute offset into everything the console has written so far."""
        with self._lock:
            return self._dropped + len(self._out)

    def since(self, mark: int) -> str:
        """What the console wrote after ``mark``, even once older output was dropped."""
        with self._lock:
            return bytes(self._out[max(0, mark - self._dropped):]).decode(errors="replace")

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.close()

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        self.close()
        return rc

    def close(self) -> None:
        self._reader.join(2)
        try:
            os.close(self.master)
        except OSError:
            pass


# -- twins: two attempts of one task running at once (issue #16) -----------------------


def ticker(path, seconds: float, every: float = 0.1) -> str:
    """A ShellCommand text: "start", then a "tick" every `every` s for `seconds`, then "end",
    each line "WHAT TASK ATTEMPT PID UNIXTIME" appended to `path` by the attempt's own shell."""
    n = max(1, round(seconds / every))
    return (f'f={shlex.quote(str(path))}; t="$BATCHTUI_TASK_ID $BATCHTUI_ATTEMPT $$"; '
            'echo "start $t $(date +%s.%N)" >> "$f"; i=0; '
            f'while [ $i -lt {n} ]; do sleep {every}; echo "tick $t $(date +%s.%N)" >> "$f"; i=$((i + 1)); done; '
            'echo "end $t $(date +%s.%N)" >> "$f"')


@dataclass
class Ticks:
    """What one attempt's shell wrote: its pid, its first and last line's time, whether it ended."""

    pid: int
    first: float
    last: float
    lines: int = 0
    ended: bool = False
    times: list[float] = field(default_factory=list)


def read_ticks(path) -> dict[tuple[int, int], Ticks]:
    """(task, attempt) -> Ticks, from a ticker's file."""
    out: dict[tuple[int, int], Ticks] = {}
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue  # a line being written
        what, task, attempt, pid, when = parts[0], int(parts[1]), int(parts[2]), int(parts[3]), float(parts[4])
        t = out.setdefault((task, attempt), Ticks(pid, when, when))
        t.first, t.last = min(t.first, when), max(t.last, when)
        t.lines += 1
        t.times.append(when)
        t.ended = t.ended or what == "end"
    return out


def twins(ticks: dict[tuple[int, int], Ticks]) -> list[str]:
    """Pairs of attempts of one task whose shells wrote lines at overlapping times."""
    by_task: dict[int, list[tuple[int, Ticks]]] = {}
    for (task, attempt), t in ticks.items():
        by_task.setdefault(task, []).append((attempt, t))
    found = []
    for task, attempts in by_task.items():
        attempts.sort(key=lambda a: a[1].first)
        for (a1, t1), (a2, t2) in zip(attempts, attempts[1:], strict=False):
            if t1.last >= t2.first:
                found.append(f"task {task}: attempt {a1} (pid {t1.pid}) wrote until {t1.last:.3f}, "
                             f"{t1.last - t2.first:.2f} s after attempt {a2} (pid {t2.pid}) started at {t2.first:.3f}")
    return found


def shared_folder() -> str:
    """A folder under /tmp that every account may write in (a task may run as nobody)."""
    folder = tempfile.mkdtemp(prefix="batchtui-twins-", dir="/tmp")
    os.chmod(folder, 0o777)
    return folder


def stop_outside_write(proc: subprocess.Popen, url: str, tries: int = 50) -> None:
    """SIGSTOP a batch server process when it holds no write transaction open.

    A stopped process that holds SQLite's write lock (or PostgreSQL row locks
    in an open transaction) keeps every other server from writing until it
    runs again: nobody could declare it dead. That is a property of the
    databases, not what these tests are about, so the stop is tried again
    until it lands between two transactions.
    """
    for _ in range(tries):
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        if not _write_held(url):
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the batch server was always in a write transaction when stopped")


def _write_held(url: str) -> bool:
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///"):], timeout=0.5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND state LIKE 'idle in transaction%' AND xact_start < now() - interval '0.2 s'"
                           ).fetchone()
        return bool(row and row[0])
