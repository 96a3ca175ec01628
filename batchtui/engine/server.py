"""The batch server loop.

One thread (the loop) does every database write of the server: it starts due
jobs, claims Ready tasks up to the free worker threads (more while its tasks
are short: see AHEAD_UNDER), records what the
workers report and advances conditions, one transaction a round (see
``_round``); the runs of jobs whose tasks have ended are finished in batches,
while the workers run the next tasks. Workers only run batch class code and
report an ``Outcome``. On SQLite a helper thread checkpoints the WAL
(``checkpoint.py``), so that the loop's commits do not copy pages into the
database file.

The loop sleeps until the next thing it knows of is due (the earliest Waiting
job or pending retry), a worker finishes, or ``wake()`` is called; at most
``poll`` seconds, so that work created by other processes is seen.

No task twice at once (issue #16). The server registers with a new epoch
(store.py: its fencing token) and writes about its attempts only while its
row keeps it. If a write or the heartbeat finds the server was declared dead
meanwhile (it stalled past --dead-after: SIGSTOP, a frozen VM, a network
cut) or its name was taken, ``_on_fenced`` stops every attempt it runs
(their process groups killed at once), records nothing more for them, and
the next round registers it again, taking back only what is its own. An
attempt whose server's epoch has moved on is an orphan: the heartbeat of
every server looks for orphans (``_take_back_orphans``) and, before one
becomes Ready again, stops its process group if it runs in this server's
pid space (same machine, same pid namespace); from another host it cannot,
says so in the attempt's log, and relies on the fencing above over there.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .. import events, procs
from .. import models as m
from ..classes import BatchClassError, CancelFlag, TaskCanceled, TaskContext, get_class, validate_params
from ..controls import most_threads, threads_now
from ..db import DatabaseUnavailable, deadlocked, file_identity, write
from ..errors import UserError
from ..servers import ALIVE_WITHIN
from ..timeutil import utcnow
from .checkpoint import Checkpointer
from .delivery import AlertDelivery, RetryPolicy
from .dialect import RowsChanged
from .mail import SMTP_TIMEOUT
from .oplog import attempt_ended, attempt_started, database_back, database_error
from .runas import RunByCheck, RunByRule
from .store import Claimed, EngineStore, Fence, Orphan, Outcome, ServerFenced, ServerNameInUse, ServerSettings
from .workers import WorkerPool

if TYPE_CHECKING:
    from .metrics import ServerMetrics

log = logging.getLogger("batchtui.engine")

FLUSH_EVERY = 0.5  # seconds between writes of running attempts' logs
NEXT_DUE_EVERY = 0.02  # seconds between looks for the next due time while busy
CANCEL_CHECK_EVERY = 0.1  # seconds between looks for cancel requests of running tasks
RUNS_BATCH = 128  # runs whose tasks ended, finished together while tasks run (see _round)
RUNS_WITHIN = 0.02  # seconds such a run waits at most to be finished
_RESERVED = 4  # vocabulary.Priority.RESERVED: tasks that may use the reserved threads

# Claiming ahead (issue 17). While the attempts a server ends are short, it
# claims more tasks than it has threads: those beyond its free threads wait
# in its own queue and start as soon as a thread frees, without waiting for
# the next round's commit. A round then records and claims more tasks at
# once, and short tasks run back to back. How many: what its threads would
# run in AHEAD_UNDER at the pace of the longest attempt it last recorded, at
# most AHEAD_MAX times its threads (none once an attempt ran AHEAD_UNDER or
# longer). Their attempts are committed before any of them starts, as
# always; the end records when each really started. One claimed ahead that
# has not started after AHEAD_WAIT (its threads got busy with longer tasks,
# or the server stalled) is handed back (Ready again, no retry used; its
# attempt says it never started), and so is every one still waiting when the
# server stops. A task claimed for a free thread never waits. Not
# with reserved threads or limited groups, whose counts of running tasks
# stay exact. On SQLite only while no other live batch server shares the
# file: several servers claiming ahead by turns left its one write lock so
# rarely free that an operator's save could wait out the busy timeout. The
# attempts of those claimed ahead are written ``queued`` until the server
# records their real start (in the round after it, or with a command's
# process group, which the command waits for): after a crash, one still
# queued is handed back, Ready again, no retry used (migrations/v12).
AHEAD_UNDER = 0.02
# At most AHEAD_MAX times its threads. 4, then 8 (1.11x on one PostgreSQL server); 32 since the
# updates of many rows are one statement on SQLite too: 20,000 one-task jobs 14,500 -> 16,500
# tasks/s in-process, one PostgreSQL server 2,860 -> 3,070 (bench/README, fifth round). The
# wait stays bounded by AHEAD_UNDER: the cap binds only for attempts under 0.6 ms.
AHEAD_MAX = 32
AHEAD_WAIT = 1.0

# Rounds in a row that may lose a race (rows changed meanwhile, a deadlock
# broken) and run again almost at once (5 ms more each time, at most 50 ms):
# operators canceling job after job can beat several rounds in a row. After
# that the loop backs off as after an error.
CONFLICT_RETRIES = 20

# Seconds a take-back gives an orphaned attempt's process group after SIGTERM
# before SIGKILL. Short: the server that owned it is dead, the task is to run
# again, and the loop waits meanwhile (this server's own heartbeat too).
TAKE_BACK_GRACE = 1.0


@dataclass(slots=True)
class Running:
    claimed: Claimed
    cancel: CancelFlag = field(default_factory=CancelFlag)
    lines: list[str] = field(default_factory=list)
    flushed: int = 0
    handback: bool = False
    result: str | None = None
    ended: datetime | None = None
    progress: tuple[float, str | None] | None = None
    progress_flushed: tuple[float, str | None] | None = None
    refused: str | None = None  # why its class is not run (runas.py): the attempt ends in Error
    # The process group of the command it started (ShellCommand), and the
    # event its class waits on until that is recorded (see _write_started).
    pgid: int | None = None
    pgid_key: str | None = None
    recorded: threading.Event | None = None  # made when a command reports its group (most tasks start none)
    dropped: bool = False  # its server was fenced: nothing more is recorded for it
    # Its task's time limit (issue 14): when, on this server's monotonic clock, the attempt is
    # stopped; set once the stop is asked for (the attempt then ends in Error, not Canceled).
    deadline: float | None = None
    timed_out: bool = False
    # When it was queued for a worker and when a worker started it (None: not yet, see
    # AHEAD_UNDER), both on this server's monotonic clock, and the start as a time.
    queued: float = 0.0
    started_mono: float | None = None
    started: datetime | None = None
    ran: float | None = None  # seconds its class ran
    withdrawn: bool = False  # handed back by the loop before a worker started it
    ahead: bool = False  # claimed beyond the free threads: it may wait for one (AHEAD_UNDER)
    # Set once its start is recorded, for one claimed ahead whose class is not rerun_safe,
    # which waits for it before it runs (see _report_ahead_start).
    start_recorded: threading.Event | None = None
    # Its class's run() was called: handed back before that, it is no attempt in history
    # (a stop can come while it waits for a thread or for its start to be recorded).
    began: bool = False


def default_name() -> str:
    return socket.gethostname() or "batch-server"


class BatchServerEngine:
    """A batch server (the ERP's AOS batch service) running in a thread."""

    def __init__(
        self,
        name: str | None = None,
        threads: int = 8,
        poll: float = 1.0,
        retry_base: float = 5.0,
        groups: list[str] | None = None,
        on_change: Callable[[], None] | None = None,
        heartbeat: float = 5.0,
        dead_after: float = ALIVE_WITHIN,
        exit_when_idle: bool = False,
        console: bool = False,
        store: EngineStore | None = None,
        delivery_retry: RetryPolicy | None = None,
    ) -> None:
        # The console's embedded server is "HOST-console" (then -2, -3... when
        # another console on the host runs), so it never takes the name of the
        # host's headless server.
        self._names = [name] if name else (
            [f"{default_name()}-console"] + [f"{default_name()}-console-{i}" for i in range(2, 10)]
            if console else [default_name()])
        self.name = self._names[0]
        self.threads = max(1, int(threads))
        self.poll = max(0.01, float(poll))
        self.retry_base = max(0.0, float(retry_base))
        self.groups = list(groups or [])
        self.on_change = on_change
        self.heartbeat_every = heartbeat
        self.dead_after = dead_after
        self.exit_when_idle = exit_when_idle
        self._store = store  # made in start() for the database open then, unless given
        self._stop = threading.Event()
        self._done = threading.Event()
        # What the workers report, and None for "look again" (wake()): the
        # loop sleeps on this queue, so a report costs a worker one put().
        self._outcomes: queue.SimpleQueue[Running | None] = queue.SimpleQueue()
        self._held: list[Running] = []  # taken off the queue while sleeping
        self._running: dict[int, Running] = {}  # by attempt id, until recorded as ended
        self._ended: list[Running] = []  # reported by the workers, not recorded yet
        self._recorded: list[Running] = []  # recorded in the open transaction
        # Process groups that running attempts reported, until recorded (see _write_started).
        self._starting: queue.SimpleQueue[Running] = queue.SimpleQueue()
        self._to_record: list[Running] = []
        self._recording: list[Running] = []  # recorded in the open transaction
        # Attempts claimed ahead that a worker started, until their start is recorded (see _write_starts).
        self._ahead_started: queue.SimpleQueue[Running] = queue.SimpleQueue()
        self._to_start: list[Running] = []
        self._starts_seen: list[Running] = []  # looked at in the open transaction
        self._starts_writing: list[Running] = []  # of those, recorded in the open transaction
        self._asleep = False  # the loop waits on _outcomes (a worker that starts a task ahead wakes it)
        self._abandoned: set[int] = set()  # id() of dropped attempts whose worker has not returned
        self._epoch = 0  # this server's fencing token (store.register)
        self._fence_made: Fence | None = None
        self._needs_register = False  # fenced: register again in the next round
        self._host = socket.gethostname()
        self._still_there: set[int] = set()  # orphaned attempts whose process group would not go
        self._unfinished: set[int] = set()  # jobs whose tasks ended here: their runs may be over
        self._unfinished_since = 0.0  # when the first of them was added
        self._thread: threading.Thread | None = None
        self._pool: WorkerPool | None = None
        self._served: list[str] = [""]
        self._last_beat = 0.0
        self._last_flush = 0.0
        self._last_mail = 0.0
        self._delivery = AlertDelivery(self.name, delivery_retry)  # alert e-mail and notices, kept and retried
        self._db_identity: tuple[int, int] | None = None
        self._last_cancel_check = 0.0
        self._pg = False
        self._checkpointer: Checkpointer | None = None
        self._next_due: datetime | None = None
        self._next_due_checked = 0.0
        self._due_dirty = True
        # The Server configuration form's settings and the served groups'
        # limits, read again every poll interval (see _apply_settings).
        self.settings = ServerSettings()
        self.capacity = self.threads  # how many tasks it may run now
        self._limited: list[str] = []  # served groups with a limit or stopped
        self._last_settings = 0.0
        self.error: str | None = None  # last database error, shown by the console
        self._outage_since: float | None = None  # time.monotonic() of the first failed round of an outage
        # Told of attempts and heartbeats (engine/metrics.py ServerMetrics), when --metrics-port is given.
        self.metrics: ServerMetrics | None = None
        self.on_registered: Callable[[], None] | None = None  # called once registered, before the loop starts
        self._run_by_check: RunByCheck | None = None  # a root server on SQLite: whose tasks it runs
        self._factor = 1  # how many times its threads it may hold claimed (see AHEAD_UNDER)
        self._alone = False  # no other live batch server (read every poll interval, see _apply_settings)
        self._start_lock = threading.Lock()  # a worker starting an attempt, or the loop withdrawing it

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """Register the server, take back what it left running, start the loop thread."""
        from ..identity import check_may_serve

        with m.database.connection_context():
            check_may_serve()  # on PostgreSQL: a member of batchtui_server, or refused
        for i, name in enumerate(self._names):
            self.name = name
            try:
                self._register()
                break
            except ServerNameInUse:
                if i == len(self._names) - 1:
                    raise
        try:
            self._pool = WorkerPool(self.threads_max, name=f"batch-{self.name}")
            self._pg = self.store.pg
            if not self._pg:
                self._checkpointer = Checkpointer(m.database.obj.database, name=f"batch-checkpoint-{self.name}")
                self._checkpointer.start()
            self._delivery.check_setup()  # what its config cannot deliver, said in the log now
            if self.on_registered is not None:
                self.on_registered()  # before the loop's first line (service.py logs the start)
            self._thread = threading.Thread(target=self._loop, name=f"batch-server-{self.name}", daemon=True)
            self._thread.start()
        except BaseException:
            self._abandon()
            raise
        events.add_listener(self.wake)
        if self._pg:
            threading.Thread(target=self._listen, name=f"batch-listen-{self.name}", daemon=True).start()

    def _abandon(self) -> None:
        """A start that failed once the server was registered: its row says stopped, not alive."""
        try:
            with m.database.connection_context():
                self.store.mark_stopped(self.name, self._epoch)
        except Exception as exc:  # noqa: BLE001  (the start's own error is the one to report)
            log.error("batch server %s: could not record its stop: %s", self.name, exc)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

    def _listen(self) -> None:
        """On PostgreSQL, wake the loop when another process NOTIFYs new work."""
        self.store.listen(self._stop, lambda: self._outcomes.put(None),
                          lambda exc: log.warning("batch server %s: LISTEN connection lost: %s", self.name, exc))

    def wake(self) -> None:
        self._due_dirty = True
        self._outcomes.put(None)

    def stop(self, grace: float = 5.0) -> None:
        """Stop claiming work; let running tasks finish for ``grace`` seconds,
        then hand the rest back (Ready again, no retry used) and stop."""
        events.remove_listener(self.wake)
        if self._thread is None:
            return
        self._grace_deadline = time.monotonic() + grace
        if self._running:
            log.info("batch server %s stopping: starting nothing new; %d running task(s) get %g s to end, "
                     "then are handed back", self.name, len(self._running), grace,
                     extra={"event": "server_stopping", "server": self.name})
        self._stop.set()
        self._outcomes.put(None)
        self._thread.join(grace + 15)
        self._thread = None
        self._delivery.join(2 * SMTP_TIMEOUT)  # a send under way ends (its claim would expire otherwise)

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def running_count(self) -> int:
        """Attempts a worker runs now (not those claimed ahead that wait for a thread)."""
        return sum(1 for r in list(self._running.values()) if r.started_mono is not None and r.result is None)

    @property
    def database_down(self) -> bool:
        """The loop's last round failed on the database (an outage it is waiting out)."""
        return self._outage_since is not None

    @property
    def epoch(self) -> int:
        """The epoch this server registered with (its fencing token)."""
        return self._epoch

    @property
    def _fence(self) -> Fence:
        fence = self._fence_made
        if fence is None or fence.epoch != self._epoch or fence.server != self.name:
            fence = self._fence_made = Fence(self.name, self._epoch)
        return fence

    # -- registration, heartbeat, recovery --------------------------------------

    @property
    def store(self) -> EngineStore:
        if self._store is None:
            self._store = EngineStore()
        return self._store

    def _register(self, reason: str | None = None) -> None:
        """Register with a new epoch; take back the attempts of this name's earlier life."""
        with _connected() if self._thread is not None else m.database.connection_context():
            self._epoch = self.store.register(self.name, self.threads, self.groups, self.dead_after)
            self._take_back_orphans(own_only=True, own_reason=reason or (
                f"batch server {self.name} restarted: this attempt was interrupted when it stopped"))
            # Runs whose tasks had all ended when it stopped (it finishes runs in batches, see _round).
            self.store.finish_settled_runs()
            self._served = self.store.served_groups(self.name)
            self._apply_settings()
        self._last_beat = time.monotonic()
        if self.metrics is not None:
            self.metrics.beat()  # registering wrote its heartbeat

    @property
    def threads_max(self) -> int:
        """Its thread count: the Server configuration form's, else --threads."""
        threads = self.settings.threads if self.settings.threads is not None else self.threads
        return max(1, most_threads(threads, self.settings.schedule))

    def _apply_settings(self) -> None:
        """Read the Server configuration form's row and the served groups' limits, and apply them.

        Settings in the database win over the command-line flags. A smaller
        thread count, a window of fewer threads or a pause only stops new
        claims: running tasks go on until they end.
        """
        self._last_settings = time.monotonic()
        self.settings = self.store.server_settings(self.name)
        limits = self.store.group_limits(self._served)
        self._limited = sorted(limits)
        if not self._pg:  # whether it may claim ahead (AHEAD_UNDER): not beside another server on the file
            self._alone = not self.store.others_alive(self.name, utcnow() - timedelta(seconds=self.dead_after))
        threads = self.settings.threads if self.settings.threads is not None else self.threads
        capacity = threads_now(threads, self.settings.schedule, self.settings.paused,
                               datetime.now().astimezone().time())
        if self._pool is not None:
            self._pool.grow(self.threads_max)
        if capacity != self.capacity or not self._last_beat:
            self.store.set_threads_now(self.name, capacity)
        self.capacity = capacity

    def _beat(self) -> bool:
        now = utcnow()
        self.store.beat(self.name, self.threads_max, now, self._epoch)
        if self.metrics is not None:
            self.metrics.beat()
        log.debug("batch server %s: heartbeat (epoch %d, %d running, %d threads now)", self.name, self._epoch,
                  len(self._running), self.capacity, extra={"event": "heartbeat", "server": self.name})
        self._served = self.store.served_groups(self.name)
        self._apply_settings()
        changed = self.store.finish_settled_runs(now) > 0
        limit = now - timedelta(seconds=self.dead_after)
        for dead in self.store.dead_servers(self.name, limit):
            if self.store.declare_dead(dead.name, limit, now):
                log.warning("declared batch server %s dead (last heartbeat %s UTC)", dead.name,
                            f"{dead.heartbeat:%Y-%m-%d %H:%M:%S}",
                            extra={"event": "declared_dead", "server": self.name})
        # Every server looks for orphans, not only the one that declared their server
        # dead: a take-back that lost a race, or had to wait for a process group, is
        # done by the next heartbeat of any server.
        return self._take_back_orphans() > 0 or changed

    def _take_back_orphans(self, own_only: bool = False, own_reason: str = "") -> int:
        """Take back orphaned attempts (store.orphaned_attempts), after stopping their process groups.

        A group in this server's pid space is stopped (SIGTERM, TAKE_BACK_GRACE,
        SIGKILL) and must be gone before its task is settled; one that is not
        stays Executing until a later heartbeat finds it gone. A group on
        another host cannot be stopped from here: the attempt's log says so.
        own_only: only this server's own (at registration; the others are
        their servers' or the heartbeat's business).
        """
        orphans = self.store.orphaned_attempts()
        if own_only:
            orphans = [o for o in orphans if o.server == self.name]
        if not orphans:
            return 0
        here = procs.pid_space()
        local = [o for o in orphans if o.pgid and procs.key_space(o.pgid_key) == here]
        gone = procs.stop_groups([(int(o.pgid), o.pgid_key) for o in local if o.pgid],
                                 TAKE_BACK_GRACE) if local else {}
        settle: list[tuple[Orphan, str]] = []
        for o in orphans:
            reason = own_reason if o.server == self.name and own_reason else self._orphan_reason(o)
            if o.pgid:
                if o in local:
                    if not gone.get(int(o.pgid)):
                        if o.attempt_id not in self._still_there:  # said once, tried again at every heartbeat
                            self._still_there.add(o.attempt_id)
                            log.warning("batch server %s: process group %s of task %s (attempt %s) is still there "
                                        "after SIGKILL: the task is taken back once it is gone", self.name, o.pgid,
                                        o.task_id, o.attempt_id)
                        continue
                    reason += (f"; its command's process group {o.pgid} on {o.host} was stopped (or had ended) "
                               "before the task was taken back")
                else:
                    reason += (f"; its command (process group {o.pgid} on host {o.host}) may still run there: "
                               f"batch server {o.server} stops it when it finds it was declared dead")
            settle.append((o, reason))
        n = self.store.take_back(settle, retry_base=self.retry_base) if settle else 0
        if n:
            log.warning("batch server %s took back %d task(s) of %s (tasks %s)", self.name, n,
                        ", ".join(sorted({o.server for o, _ in settle})), ", ".join(str(o.task_id) for o, _ in settle),
                        extra={"event": "taken_back", "server": self.name})
        return n

    def _orphan_reason(self, o: Orphan) -> str:
        if o.heartbeat is None and o.stopped:
            return f"batch server {o.server} is gone from the batch servers; batch server {self.name} took this " \
                   "attempt back"
        if o.stopped:
            beat = f"{o.heartbeat:%Y-%m-%d %H:%M:%S}" if o.heartbeat is not None else "none"
            return (f"batch server {o.server} stopped answering (last heartbeat {beat} UTC); batch server "
                    f"{self.name} took this attempt back")
        return (f"batch server {o.server} registered again (restarted, or found it had been declared dead): "
                f"this attempt was interrupted; batch server {self.name} took it back")

    def _on_fenced(self, exc: ServerFenced) -> None:
        """This server was declared dead, or its name taken: its attempts are no longer its own.

        Every running attempt is stopped (its process group killed at once:
        another server may be running the task again already) and dropped:
        nothing more is recorded for it, whatever its worker reports later.
        The next round registers the server again (see _round).
        """
        running = list(self._running.values())
        log.error("batch server %s: %s; stopping its %d running attempt(s), recording nothing more for them, "
                  "and registering again", self.name, exc, len(running), extra={"event": "fenced", "server": self.name})
        self.error = f"batch server {self.name} was declared dead: registering again"
        reported = {id(r) for r in self._ended}
        for r in running:
            r.dropped = True
            r.cancel.set()
            if id(r) not in reported:
                self._abandoned.add(id(r))
        groups = [(r.pgid, r.pgid_key) for r in running if r.pgid]
        if groups:
            procs.stop_groups(groups, 0)
        self._running.clear()
        self._ended = []
        self._recorded = []
        self._to_record = []
        self._recording = []
        self._needs_register = True

    # -- the loop ----------------------------------------------------------------

    def _loop(self) -> None:
        backoff = 0.0
        conflicts = 0
        try:
            while True:
                stopping = self._stop.is_set()
                try:
                    changed, timeout = self._pass(stopping)
                    backoff = 0.0
                    conflicts = 0
                except ServerFenced as exc:
                    self._on_fenced(exc)
                    timeout = 0.0
                    changed = True
                except Exception as exc:  # noqa: BLE001  (database gone, locked, a bug: the loop backs off, never dies)
                    changed = True
                    # An operator or another server changed rows this round had read (a job
                    # canceled as it started: RowsChanged, or PostgreSQL breaking a deadlock
                    # between the two): the round's transaction was rolled back, and it runs
                    # again at once from fresh reads. A race, not an outage; only one that
                    # keeps coming back is handled as an error.
                    conflicts = conflicts + 1 if isinstance(exc, RowsChanged) or deadlocked(exc) else 0
                    if 0 < conflicts <= CONFLICT_RETRIES:
                        log.debug("batch server %s: round retried: %s", self.name, str(exc).splitlines()[0],
                                  extra={"event": "round_retried", "server": self.name})
                        timeout = min(0.05, 0.005 * conflicts)
                    else:
                        backoff = timeout = self._on_error(exc, backoff)
                if changed and self.on_change is not None:
                    try:
                        self.on_change()
                    except Exception:  # noqa: BLE001  (the console's callback must not stop the server)
                        log.exception("batch server %s: on_change failed", self.name)
                if stopping and self._shutdown_done():
                    break
                if self.exit_when_idle and not stopping and self._idle():
                    break
                if backoff:
                    # After a database error, back off even when finished attempts are
                    # waiting to be recorded (they would otherwise make this loop spin).
                    if stopping:
                        time.sleep(min(backoff, 0.5))
                    else:
                        self._stop.wait(backoff)
                elif self._outcomes.empty():
                    self._sleep(timeout)
        finally:
            self._finish()
            _close_quietly()

    def _on_error(self, exc: Exception, backoff: float) -> float:
        """A round failed (the database is gone or locked, or a bug): say so; the next, growing, back-off."""
        _close_quietly()
        self.error = f"batch server {self.name}: database error: {exc}".splitlines()[0]
        database_error(self, self.error)
        return min(30.0, max(0.5, backoff * 2))

    def _pass(self, stopping: bool) -> tuple[bool, float]:
        """One round on the loop's connection: whether anything changed, and how long to sleep."""
        # The loop keeps its own connection open between rounds;
        # after an error it is closed and opened again.
        self._connect()
        changed = self._round(stopping)
        if self.store.readied:
            self.store.readied = False
            self.store.notify()  # other servers may have work now (PostgreSQL; see EngineStore.readied)
        if changed and self._checkpointer is not None:
            self._checkpointer.poke()
        timeout = self._timeout()
        if self._checkpointer is not None:
            self._checkpointer.quiet_for(timeout)
        if self._outage_since is not None:
            database_back(self)
        if self.error:
            self.error = None
            changed = True
        return changed, timeout

    def _connect(self) -> None:
        """The loop's connection, checked to still be on the database's file."""
        if m.database.is_closed():
            if file_identity() == (0, 0):
                # Not connecting: SQLite would make a new, empty file there.
                raise DatabaseUnavailable("the database file is missing")
            m.database.connect()
            self.store.d.engine_session()
            self._db_identity = file_identity()
        elif file_identity() != self._db_identity:
            raise DatabaseUnavailable("the database file was removed or replaced; reconnecting")

    def _round(self, stopping: bool) -> bool:
        """One round of the loop: what ended, what is due, what to run.

        One transaction records the attempts that ended (their tasks settle or
        retry, their dependents become Ready) and claims tasks for the free
        worker threads (starting due jobs first when too few tasks are Ready).
        Only once it has committed are the ended attempts forgotten and the
        claimed ones started: a task's attempt row is committed before its
        code runs, and the end of an attempt no later than the claim of the
        thread it freed (so a crash, or a restored backup, never shows a
        thread's next task claimed while its last one still runs). If it
        fails, the ended attempts are kept for the next round and the claims
        never happened. With 8 threads a round starts at most 8 tasks.

        Finishing the runs of the jobs whose tasks ended (outcome, task
        snapshot, alerts, a recurring job's next start) can wait a little:
        those jobs are gathered in `_unfinished` and their runs finished
        RUNS_BATCH at a time, in a second transaction while the workers run
        what was just started (with the due jobs that did not have to start
        before the claims); at once when nothing runs, when the oldest has
        waited RUNS_WITHIN, and when stopping. Runs that a crash leaves
        unfinished in between are finished by the heartbeat
        (EngineStore.finish_settled_runs, on any server) and by _register.
        """
        now_mono = time.monotonic()
        changed = False
        if self._needs_register and not stopping:
            self._reregister()
            changed = True
        if now_mono - self._last_beat >= self.heartbeat_every:
            self._last_beat = now_mono
            changed = self._beat()
        self._take_ended()
        changed = changed or bool(self._ended)
        if self._running and now_mono - self._last_cancel_check >= CANCEL_CHECK_EVERY:
            self._last_cancel_check = now_mono
            self._check_cancels()
            self._check_time_limits(now_mono)
        if now_mono - self._last_settings >= self.poll:
            self._apply_settings()
        self._withdraw_waiting(stopping, now_mono)
        busy = len(self._running) - len(self._ended) + len(self._abandoned)
        free = 0 if stopping or self._needs_register else self.capacity * self._ahead() - busy
        threads_free = self.capacity - busy  # the claims beyond these wait for a thread (claimed ahead)
        due = not stopping and self._is_due()
        claimed: list[Claimed] = []
        if self._ended or free > 0 or self._to_record or self._to_start:
            with self._transaction():
                self._write_reports()
                if free > 0:
                    claimed = self._claim(free, queued_from=threads_free)
                if len(claimed) < free and due:
                    # Threads to spare: the due jobs' tasks may run at once.
                    changed = self._start_due(True) or changed
                    due = False
                    claimed += self._claim(free - len(claimed), claimed, queued_from=threads_free - len(claimed))
        rule = self.run_by_rule() if claimed else None
        for i, c in enumerate(claimed):
            self._launch(c, rule.refusal(c.run_by) if rule is not None else None, ahead=i >= threads_free)
        # While the workers run: start the jobs that are due all the same, and
        # finish the runs that are over.
        finish = bool(self._unfinished) and (stopping or self._finish_runs_now())
        if due or finish:
            with write():
                changed = self._start_due(due) or changed
                if finish:
                    self.store.finish_if_settled(self._unfinished)
            if finish:
                self._unfinished = set()
                changed = True
        changed = changed or bool(claimed)
        if now_mono - self._last_flush >= FLUSH_EVERY:
            self._last_flush = now_mono
            self._flush_logs()
        if now_mono - self._last_mail >= self._delivery.policy.every:
            self._last_mail = now_mono
            changed = self._late_alerts() or changed
            self._delivery.round(self.name)
        return changed

    def _ahead(self) -> int:
        """How many times its threads the server may hold claimed now (see AHEAD_UNDER)."""
        if self._limited or self.settings.reserved > 0 or not (self._pg or self._alone):
            return 1
        return self._factor

    def _withdraw_waiting(self, stopping: bool, now_mono: float) -> None:
        """Hand back the attempts claimed ahead that no worker has started: all of them when
        stopping, else those that waited AHEAD_WAIT (the threads are busy with longer tasks)."""
        for r in self._running.values():
            if r.ahead and r.started_mono is None and not r.withdrawn and not r.dropped and (
                    stopping or now_mono - r.queued >= AHEAD_WAIT):
                with self._start_lock:
                    if r.started_mono is not None:
                        continue
                    r.withdrawn = True
                why = "stopping" if stopping else f"its threads were busy for {AHEAD_WAIT:g} s"
                r.result = "handback"
                r.lines.append(f"Not started: batch server {self.name} had claimed it ahead and {why}; "
                               "handed back (Ready again, no retry used)")
                r.ended = utcnow()
                self._ended.append(r)
                self._factor = 1  # the threads are busy: claim no more than they can take

    def _claim(self, free: int, claimed: list[Claimed] | None = None, queued_from: int | None = None) -> list[Claimed]:
        """Claim tasks for up to free threads, keeping the reserved threads for Reserved-capacity jobs.

        The server has `capacity` threads, `reserved` of them only for tasks of
        Reserved-capacity jobs, which may use the others too: such tasks fill
        the reserved threads first. Without reserved threads this is one claim.
        queued_from: the claims from this one on wait for a thread (claimed
        ahead; never with reserved threads, see _ahead).
        """
        reserved = min(self.settings.reserved, self.capacity)
        if reserved <= 0:
            return self.store.claim_ready_tasks(self.name, self._served, free, limited=self._limited,
                                                 fence=self._fence, queued_from=queued_from)
        ending = {id(r) for r in self._ended}
        held = [r.claimed for r in self._running.values() if id(r) not in ending] + (claimed or [])
        special = sum(1 for c in held if c.priority == _RESERVED)
        general = (self.capacity - reserved) - (len(held) - special) - max(0, special - reserved)
        out: list[Claimed] = []
        if general < free:
            out = self.store.claim_ready_tasks(self.name, self._served, free, limited=self._limited,
                                               reserved_only=True, fence=self._fence)
            general -= max(0, special + len(out) - reserved) - max(0, special - reserved)
        room = min(general, free - len(out))
        if room > 0:
            out += self.store.claim_ready_tasks(self.name, self._served, room, limited=self._limited,
                                                fence=self._fence)
        return out

    def _is_due(self) -> bool:
        # Only look for due jobs when one is known to be due (the next due
        # time is looked up after every round, see _timeout).
        return self._due_dirty or (self._next_due is not None and self._next_due <= utcnow())

    def _start_due(self, due: bool) -> bool:
        if not due:
            return False
        started = self.store.start_due_jobs(self.name)
        started += self.store.start_requested_runs(self.name)  # run now, rerun (issue 14)
        if started or self.store.deferred:
            self._due_dirty = True
        return bool(started)

    # -- attempts that ended, runs that are over -------------------------------------

    def _reregister(self) -> None:
        """After _on_fenced: register again with a new epoch (or stop, if the name is taken)."""
        try:
            self._register(reason=f"batch server {self.name} found it had been declared dead (it did not answer "
                                  f"for over {self.dead_after:g} s): this attempt was stopped")
        except ServerNameInUse as exc:
            log.error("batch server %s: cannot register again: %s; stopping", self.name, exc)
            self.error = f"batch server {self.name}: {exc}"
            self._needs_register = False
            self._stop.set()
            return
        self._needs_register = False
        self.error = None
        log.warning("batch server %s registered again (epoch %d)", self.name, self._epoch,
                    extra={"event": "registered_again", "server": self.name})

    def _take_ended(self) -> None:
        """Move what the workers reported into _ended, and the process groups they started into _to_record.

        What the workers of dropped attempts report (see _on_fenced) is let go."""
        ended = self._drain()
        if self._abandoned:
            for r in ended:
                if r.dropped:
                    self._abandoned.discard(id(r))
            ended = [r for r in ended if not r.dropped]
        self._ended += ended
        while not self._starting.empty():
            r = self._starting.get_nowait()
            if not r.dropped:
                self._to_record.append(r)
        while not self._ahead_started.empty():
            r = self._ahead_started.get_nowait()
            if not r.dropped:
                self._to_start.append(r)

    def _process_started(self, r: Running, pgid: int) -> threading.Event:
        """A worker's command started in process group pgid (TaskContext.process_started): the loop
        records it, then sets r.recorded, which the command waits for before it runs."""
        r.pgid = pgid
        r.pgid_key = procs.group_key(pgid)
        r.recorded = recorded = threading.Event()
        self._starting.put(r)
        self._outcomes.put(None)  # wake the loop
        return recorded

    def _write_reports(self) -> None:
        """What the workers reported since the last round, in the open transaction: process
        groups about to start, attempts that ended, starts of attempts claimed ahead."""
        if self._to_record:
            self._write_started()
        self._write_ended()
        if self._to_start:
            self._write_starts()

    def _write_started(self) -> None:
        """Record the process groups of commands about to start, in the open transaction."""
        self._recording = [r for r in self._to_record if r.claimed.attempt_id in self._running]
        if self._recording:
            self.store.record_processes([(r.claimed.attempt_id, self._host, int(r.pgid or 0), r.pgid_key, r.started)
                                         for r in self._recording], self._fence)

    def _write_starts(self) -> None:
        """Record the real starts of attempts claimed ahead that are still running, in the open
        transaction (those that ended are recorded with their end): no longer ``queued``."""
        self._starts_seen = list(self._to_start)
        self._starts_writing = [r for r in self._starts_seen
                                if r.result is None and not r.dropped and r.claimed.attempt_id in self._running]
        self.store.record_starts([(r.claimed.attempt_id, r.started) for r in self._starts_writing], self._fence)

    def _write_ended(self) -> None:
        """Record every attempt in _ended, in the open transaction (see _transaction)."""
        self._recorded = list(self._ended)
        if self._recorded:
            jobs = self.store.finish_attempts([self._outcome(r) for r in self._recorded], retry_base=self.retry_base,
                                              finish_runs=False, fence=self._fence)
            if jobs and not self._unfinished:
                self._unfinished_since = time.monotonic()
            self._unfinished |= jobs

    @contextmanager
    def _transaction(self):
        """A write transaction of the loop. The attempts it recorded are forgotten
        once it has committed; if it fails they stay in _ended for the next round."""
        self._recorded = []
        self._recording = []
        self._starts_seen = []
        self._starts_writing = []
        with write():
            yield
        if self._starts_seen:
            done = {id(r) for r in self._starts_seen}  # recorded, or ended (recorded with the end) or dropped
            self._to_start = [r for r in self._to_start if id(r) not in done]
            for r in self._starts_writing:
                if r.start_recorded is not None:
                    r.start_recorded.set()  # its class may run now
            self._starts_seen = self._starts_writing = []
        recorded, self._recorded = self._recorded, []
        for r in recorded:
            r.flushed = len(r.lines)
            self._running.pop(r.claimed.attempt_id, None)
            attempt_ended(self, r)
        if recorded:
            self._factor = _ahead_factor([r.ran for r in recorded])
        self._ended = self._ended[len(recorded):]
        if self._to_record:
            recording, self._recording = self._recording, []
            for r in recording:
                if r.recorded is not None:
                    r.recorded.set()  # its command may start now
            done = {id(r) for r in recording}
            self._to_record = [r for r in self._to_record if id(r) not in done and not r.dropped
                               and r.claimed.attempt_id in self._running]

    def _record_ended(self) -> None:
        """Record what ended, outside a round (while stopping)."""
        self._take_ended()
        if self._ended:
            with _connected(), self._transaction():
                self._write_ended()

    def _finish_runs_now(self) -> bool:
        return (len(self._unfinished) >= RUNS_BATCH or not self._running
                or time.monotonic() - self._unfinished_since >= RUNS_WITHIN)

    def _finish_runs(self) -> None:
        """Finish the runs of the jobs in _unfinished that have nothing left to do."""
        with _connected():
            self.store.finish_if_settled(self._unfinished)
        self._unfinished = set()

    def _timeout(self) -> float:
        # While tasks run, rounds come one after another; the next due time
        # is looked up again at most every NEXT_DUE_EVERY, or at once when
        # this process changed something (wake) or a round started jobs.
        mono = time.monotonic()
        if (not self._running or self._due_dirty
                or mono - self._next_due_checked >= NEXT_DUE_EVERY):
            self._next_due = self.store.next_due()
            self._next_due_checked = mono
            self._due_dirty = False
        nxt = self._next_due
        timeout = self.poll
        if nxt is not None:
            timeout = min(timeout, max(0.0, (nxt - utcnow()).total_seconds()))
        if self._running:
            timeout = min(timeout, FLUSH_EVERY)
        if self._unfinished:
            timeout = min(timeout, max(0.0, self._unfinished_since + RUNS_WITHIN - mono))
        return timeout

    def _sleep(self, timeout: float) -> None:
        """Until a worker reports, wake() is called or the timeout has passed."""
        self._asleep = True
        try:
            item = self._outcomes.get(timeout=timeout)
        except queue.Empty:
            return
        finally:
            self._asleep = False
        if item is not None:
            self._held.append(item)

    def _drain(self) -> list[Running]:
        out, self._held = self._held, []
        while True:
            try:
                item = self._outcomes.get_nowait()
            except queue.Empty:
                return out
            if item is not None:
                out.append(item)

    @staticmethod
    def _outcome(r: Running) -> Outcome:
        log = _join(r.lines[r.flushed:]) if len(r.lines) > r.flushed else ""
        return Outcome(r.claimed.task_id, r.claimed.attempt_id, r.result or "error", log=log, ended=r.ended,
                       started=r.started, began=r.began)

    def _check_cancels(self) -> None:
        canceling = self.store.canceling_tasks([r.claimed.task_id for r in self._running.values()])
        for r in self._running.values():
            if r.claimed.task_id in canceling:
                r.cancel.set()

    def _late_alerts(self) -> bool:
        """Raise the late alerts that are due (issue 14); True if any was raised.

        They are delivered (e-mail, notices) like every other alert, by the delivery
        round that follows (engine/delivery.py)."""
        return bool(self.store.raise_late_alerts())

    def _check_time_limits(self, now_mono: float) -> None:
        """Stop the attempts of this server that have run past their task's time limit.

        Keyed on the attempt (this server's _running, by attempt id): only that attempt's
        cancel flag is set, and a ShellCommand then kills its own process group. It ends
        in Error (see _run), and its task's Maximum retries apply as for any error.
        """
        for r in self._running.values():
            if r.deadline is not None and not r.timed_out and now_mono >= r.deadline:
                r.timed_out = True
                limit = r.claimed.time_limit
                log.warning("batch server %s: job %d task %d attempt %d: time limit of %s s exceeded; stopping it",
                            self.name, r.claimed.job_id, r.claimed.task_id, r.claimed.attempt, _seconds(limit))
                r.cancel.set()

    def _flush_logs(self) -> None:
        """Write what running attempts logged and their progress, so it shows live."""
        for r in list(self._running.values()):
            n = len(r.lines)
            if n > r.flushed:
                self.store.append_log(r.claimed.attempt_id, _join(r.lines[r.flushed:n]), fence=self._fence)
                r.flushed = n
            progress = r.progress
            if progress is not None and progress != r.progress_flushed:
                self.store.report_progress(r.claimed.attempt_id, *progress, fence=self._fence)
                r.progress_flushed = progress

    def _idle(self) -> bool:
        if self._running or self._unfinished or self._held or not self._outcomes.empty():
            return False
        with _connected():
            return not self.store.has_work(self.name, self._served)

    def _shutdown_done(self) -> bool:
        """_shutdown_step; a server found fenced meanwhile has nothing of its own left to hand back."""
        try:
            return self._shutdown_step()
        except ServerFenced as exc:
            self._on_fenced(exc)
            return True

    def _shutdown_step(self) -> bool:
        """During stop: True once nothing of ours runs any more."""
        if not self._running:
            return True
        if time.monotonic() >= getattr(self, "_grace_deadline", 0):
            for r in self._running.values():
                r.handback = True
                r.cancel.set()
            # Give classes that honour the flag a moment, then hand back the rest ourselves.
            deadline = time.monotonic() + 2.0
            while len(self._running) > len(self._ended) and time.monotonic() < deadline:
                self._sleep(0.05)
                self._record_ended()
            self._record_ended()
            if self._running:
                ended = {id(r) for r in self._ended}
                for r in list(self._running.values()):
                    if id(r) in ended:
                        continue
                    r.result = "handback"
                    r.lines.append(f"batch server {self.name} stopped before the task ended: handed back")
                    r.ended = utcnow()
                    self._ended.append(r)
                self._record_ended()
            return True
        return False

    def _finish(self) -> None:
        try:
            with _connected():
                try:
                    self._record_ended()
                except ServerFenced as exc:
                    self._on_fenced(exc)  # nothing of ours to record; not registering again
                if self._unfinished:
                    self._finish_runs()
                self.store.mark_stopped(self.name, self._epoch)
        except Exception as exc:  # noqa: BLE001  (stopping goes on: the pool and checkpointer still stop)
            log.error("batch server %s: could not record its stop: %s", self.name, exc)
        if self._pool is not None:
            self._pool.shutdown()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._done.set()
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # noqa: BLE001  (the console's callback must not stop the server)
                log.exception("batch server %s: on_change failed", self.name)

    # -- running one attempt ---------------------------------------------------

    def run_by_rule(self) -> RunByRule | None:
        """Whose tasks this server may run now (asked of the SQLite file each round it starts tasks)."""
        if self._pg:
            return None
        if self._run_by_check is None:
            self._run_by_check = RunByCheck(m.database.obj.database)
        return self._run_by_check.rule()

    def _launch(self, claimed: Claimed, refused: str | None = None, ahead: bool = False) -> None:
        r = Running(claimed, refused=refused, queued=time.monotonic(), ahead=ahead)
        self._running[claimed.attempt_id] = r
        attempt_started(self, claimed)
        if refused is not None:
            log.warning("batch server %s: job %d task %d attempt %d: %s", self.name, claimed.job_id,
                        claimed.task_id, claimed.attempt, refused)
        assert self._pool is not None
        self._pool.submit(lambda: self._run(r))

    def _report_ahead_start(self, r: Running, wait: bool) -> None:
        """A worker starts an attempt claimed ahead: the loop records its start in its next round
        (_write_starts). wait: return only once that is committed (TaskCanceled if the attempt is
        canceled, handed back or dropped first), for a class that is not rerun_safe."""
        if wait:
            r.start_recorded = threading.Event()
        self._ahead_started.put(r)
        if wait or self._asleep:
            self._outcomes.put(None)  # wake the loop
        if r.start_recorded is not None:
            while not r.start_recorded.wait(0.05):
                if r.cancel.is_set():
                    raise TaskCanceled("canceled before it started")

    def _run(self, r: Running) -> None:
        c = r.claimed
        with self._start_lock:
            if r.withdrawn:
                return  # handed back by the loop before it started (see _withdraw_waiting)
            start = time.monotonic()
            if r.ahead and start - r.queued >= AHEAD_WAIT:
                # Waited too long: the loop hands it back (_withdraw_waiting). Not started here
                # even if the loop has not yet: after a stall (SIGSTOP, a frozen VM) this server
                # may have been declared dead and the task given to another one meanwhile; only
                # the loop's next write finds that out, and nothing must start before it.
                return
            r.started_mono = start
        r.started = utcnow()
        if c.time_limit is not None:
            r.deadline = start + float(c.time_limit)
        ctx = TaskContext(
            params=c.params, company=c.company, job_id=c.job_id, task_id=c.task_id,
            run_id=c.run_id, attempt=c.attempt, run_by=c.run_by, server=self.name,
            cancel_event=r.cancel, log_sink=r.lines.append,
            progress_sink=lambda value, text: setattr(r, "progress", (value, text)),
            process_sink=lambda pgid: self._process_started(r, pgid),
        )
        result = "error"
        try:
            if r.cancel.is_set():
                raise TaskCanceled  # canceled, handed back or dropped while it waited for a thread
            if r.refused is not None:
                raise BatchClassError(r.refused)
            cls = get_class(c.class_name)
            ctx.params = validate_params(cls, c.params)
            if r.ahead:
                self._report_ahead_start(r, wait=not cls.rerun_safe)
            r.began = True
            cls().run(ctx)
            result = "ended"
        except TaskCanceled:
            result = "canceled"
        except (BatchClassError, UserError) as exc:
            r.lines.append(f"Error: {exc}")
        except BaseException as exc:  # noqa: BLE001  (a batch class's bug: keep the traceback in the log)
            r.lines.append(f"Error: {type(exc).__name__}: {exc}")
            r.lines.append(traceback.format_exc().rstrip())
        if r.cancel.is_set() and result != "ended":
            result = "handback" if r.handback else "canceled"
            if r.timed_out and not r.handback:
                result = "error"
                r.lines.append(f"Error: time limit of {_seconds(c.time_limit)} s exceeded")
        if result == "handback":
            r.lines.append(f"batch server {self.name} stopped before the task ended: handed back")
        r.result = result
        r.ran = time.monotonic() - start
        r.ended = utcnow()
        self._outcomes.put(r)


def _ahead_factor(ran: list[float | None]) -> int:
    """How many times its threads a server may hold claimed after attempts that ran so long
    (None: never started): see AHEAD_UNDER."""
    if any(seconds is None for seconds in ran):
        return 1
    longest = max(seconds for seconds in ran if seconds is not None)
    if longest >= AHEAD_UNDER:
        return 1
    return min(AHEAD_MAX, 1 + int(AHEAD_UNDER / max(longest, 1e-6)))


@contextmanager
def _connected():
    """The calling thread's connection, opened if need be and left open."""
    m.database.connect(reuse_if_open=True)
    yield


def _close_quietly() -> None:
    try:
        m.database.close()
    except Exception:  # noqa: BLE001  (closing a connection that is already broken)
        pass


def _seconds(value: float | None) -> str:
    return "" if value is None else (str(int(value)) if value == int(value) else f"{value:g}")


def _join(lines: list[str]) -> str:
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def serve(name: str | None = None, threads: int = 8, groups: list[str] | None = None, poll: float = 1.0,
          retry_base: float = 5.0, exit_when_idle: bool = False, heartbeat: float = 5.0,
          dead_after: float = ALIVE_WITHIN, **service) -> int:
    """``batchtui server``: run a batch server in the foreground until SIGINT/SIGTERM (service.py)."""
    from .service import serve as run

    return run(name=name, threads=threads, groups=groups, poll=poll, retry_base=retry_base,
               exit_when_idle=exit_when_idle, heartbeat=heartbeat, dead_after=dead_after, **service)
