"""Alert e-mail and notices kept until delivered, and retried: never lost, never sent twice at once.

Each alert that asks for e-mail (or a chat/webhook notice) has, per channel,
a state on its row (schema 8): ``pending`` until delivered (``sent``) or
given up (``failed``), the attempts so far, a not-before time, the claim of
the server sending it now and the last error.

Claim, send, mark. A batch server claims a due pending alert with one
compare-and-set (state pending, not-before passed, attempts as read): it
writes its claim token, the attempts plus one and a lease (not-before =
now + ``RetryPolicy.lease``). Of several servers (threads, processes, hosts;
SQLite or PostgreSQL, where the UPDATE's WHERE is checked again on the row
it locks) exactly one wins each alert. The winner sends, then marks the
alert sent, only while its claim token is still on the row. It sends only
while its lease has time left (a margin of two network timeouts), so a
second server never sends an alert while the first still may. A server
killed after a send and before its mark leaves the claim to expire: after
the lease another server sends that alert once more (at worst one repeat per
such crash). A send that fails is tried again (the first retry after
``first`` seconds, within 60 s; then twice as long each time, up to
``longest``, 1 h), until ``give_up`` (24 h) after the alert was raised: then
it is ``failed`` with its last error. An address the site does not mail
(recipients.py) or a 5xx answer for the message fails at once, for good.

A server whose config has no SMTP server (or no notify_urls, or no Apprise)
leaves that channel's alerts to the servers that have one; any server gives
up the pending ones older than ``give_up``. Server clocks are assumed to
agree within seconds (NTP): the lease is compared with each server's clock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from peewee import Field

from .. import models as m
from ..config import Config, load_config, notify_installed
from ..errors import UserError
from ..timeutil import utcnow
from .mail import SMTP_TIMEOUT, send_mails

log = logging.getLogger("batchtui.engine")

PENDING, SENT, FAILED = "pending", "sent", "failed"
STATES = (PENDING, SENT, FAILED)
CHANNELS = ("email", "notify")
BATCH = 20  # alerts claimed at once per channel
RECHECK = 30.0  # seconds: how often a server that cannot send a channel reads its config again


@dataclass(frozen=True)
class RetryPolicy:
    """When a delivery is tried again. A batch server takes one (tests pass short ones)."""

    first: float = 30.0  # seconds before the first retry (the contract: within 60 s)
    longest: float = 3600.0  # retries at most this far apart
    give_up: float = 86400.0  # failed when not delivered this long after the alert was raised
    lease: float = 300.0  # how long a claim holds an alert (a server killed mid-send: retried after it)
    every: float = 1.0  # how often a batch server looks for due deliveries

    def delay(self, tries: int) -> float:
        """Seconds before the next try, after `tries` failed ones."""
        return min(self.longest, self.first * 2 ** max(0, min(tries, 40) - 1))

    @property
    def margin(self) -> float:
        """Time kept back at the end of a lease: no send starts that may still run when it ends."""
        return min(2 * SMTP_TIMEOUT, self.lease / 2)


class Outbox:
    """The statements of one channel's deliveries."""

    def __init__(self, channel: str) -> None:
        assert channel in CHANNELS
        self.channel = channel
        self.state: Field = getattr(m.Alert, f"{channel}_state")
        self.tries: Field = getattr(m.Alert, f"{channel}_tries")
        self.next: Field = getattr(m.Alert, f"{channel}_next")
        self.claim_field: Field = getattr(m.Alert, f"{channel}_claim")
        self.error: Field = getattr(m.Alert, f"{channel}_error")

    def _due(self, now: datetime) -> Any:
        return (self.state == PENDING) & (self.next.is_null() | (self.next <= now))

    def any_due(self, now: datetime, created_before: datetime | None = None) -> bool:
        where = self._due(now)
        if created_before is not None:
            where &= m.Alert.created <= created_before
        return m.Alert.select(m.Alert.id).where(where).limit(1).exists()

    def give_up_old(self, now: datetime, policy: RetryPolicy) -> int:
        """Fail the pending deliveries of alerts raised longer than give_up ago (not claimed now)."""
        cutoff = now - timedelta(seconds=policy.give_up)
        rows = list(m.Alert.select(m.Alert.id, self.tries, self.error)
                    .where(self._due(now) & (m.Alert.created <= cutoff)).limit(500))
        hours = f"{policy.give_up / 3600:g} h" if policy.give_up >= 3600 else f"{policy.give_up:g} s"
        count = 0
        for row in rows:
            last = getattr(row, self.error.name) or "no batch server that could send it tried"
            error = f"given up: not delivered within {hours} ({last})"
            if m.Alert.update({self.state: FAILED, self.error: error, self.next: None, self.claim_field: None}).where(
                    (m.Alert.id == row.id) & self._due(now)
                    & (self.tries == getattr(row, self.tries.name))).execute() == 1:
                count += 1
                log.warning("alert %s: %s %s", row.id, self.label, error)
        return count

    @property
    def label(self) -> str:
        return "e-mail" if self.channel == "email" else "notice"

    def claim(self, token: str, now: datetime, policy: RetryPolicy, limit: int = BATCH) -> list[Any]:
        """Take up to limit due alerts, each by a compare-and-set on its attempts; the rows as taken."""
        candidates = list(m.Alert.select().where(self._due(now)).order_by(m.Alert.id).limit(limit))
        lease_end = now + timedelta(seconds=policy.lease)
        taken = []
        for row in candidates:
            tries = int(getattr(row, self.tries.name) or 0)
            if m.Alert.update({self.claim_field: token, self.tries: tries + 1, self.next: lease_end}).where(
                    (m.Alert.id == row.id) & self._due(now) & (self.tries == tries)).execute() == 1:
                setattr(row, self.tries.name, tries + 1)
                taken.append(row)
        return taken

    def mark_sent(self, alert_id: int, token: str, **extra: Any) -> bool:
        """Sent: only while this claim holds it (False: the lease ran out and another server has it)."""
        changes = {self.state: SENT, self.next: None, self.claim_field: None, self.error: None}
        changes.update({getattr(m.Alert, k): v for k, v in extra.items()})
        return m.Alert.update(changes).where((m.Alert.id == alert_id) & (self.claim_field == token)
                                             & (self.state == PENDING)).execute() == 1

    def mark_failed(self, alert: Any, token: str, error: str, permanent: bool, now: datetime,
                    policy: RetryPolicy, **extra: Any) -> str | None:
        """Tried again later, or failed for good (permanent, or past give_up by the next try).
        The state written (None: the claim was lost meanwhile, nothing written)."""
        tries = int(getattr(alert, self.tries.name) or 0)
        retry_at = now + timedelta(seconds=policy.delay(tries))
        give_up = permanent or retry_at > alert.created + timedelta(seconds=policy.give_up)
        changes = {self.error: error[:2000], self.claim_field: None,
                   self.state: FAILED if give_up else PENDING, self.next: None if give_up else retry_at}
        changes.update({getattr(m.Alert, k): v for k, v in extra.items()})
        written = m.Alert.update(changes).where((m.Alert.id == alert.id) & (self.claim_field == token)
                                                & (self.state == PENDING)).execute() == 1
        if not written:
            return None
        return FAILED if give_up else PENDING


class AlertDelivery:
    """A batch server's deliveries: one background thread at a time, started by the loop's round."""

    def __init__(self, server: str, policy: RetryPolicy | None = None) -> None:
        self.server = server
        self.policy = policy or RetryPolicy()
        self.outboxes = [Outbox(c) for c in CHANNELS]
        self._thread: threading.Thread | None = None
        self._said: set[str] = set()  # setup problems logged once
        # The channels its config could send at its last pass (None: not known), and when that was:
        # a server that cannot send a channel does not start a pass for it, but reads its config
        # again every RECHECK seconds.
        self._can: set[str] | None = None
        self._checked = 0.0

    def check_setup(self) -> None:
        """At server start: say in the log what the config cannot deliver (never a traceback)."""
        try:
            cfg = load_config()
        except UserError as exc:
            log.error("alerts not delivered: %s", exc)
            return
        self._setup_problems(cfg)

    def _setup_problems(self, cfg: Config) -> bool:
        """Whether notices can be sent; logs (once each) why not."""
        if not cfg.notify_urls:
            return False
        if not notify_installed():
            self._say("notify_urls are set but Apprise is not installed: alert notices stay pending "
                      "(pip install 'batchtui[notify]')")
            return False
        from .notify import check_urls

        for problem in check_urls(cfg.notify_urls):
            self._say(f"config {cfg.path}: {problem}")
        return True

    def _say(self, text: str, level: int = logging.ERROR) -> None:
        if text not in self._said:
            self._said.add(text)
            log.log(level, "%s", text)

    def round(self, server: str | None = None) -> bool:
        """Called by the loop (its database connection): start a delivery thread when something is due."""
        if server:
            self.server = server
        if self._thread is not None and self._thread.is_alive():
            return False
        now = utcnow()
        can = self._can if time.monotonic() - self._checked < RECHECK else None
        old = now - timedelta(seconds=self.policy.give_up)
        if not any(o.any_due(now, None if can is None or o.channel in can else old) for o in self.outboxes):
            return False
        self._thread = threading.Thread(target=self._run, name=f"batch-delivery-{self.server}", daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            with m.database.connection_context():
                self.deliver()
        except Exception as exc:  # noqa: BLE001 - the database went away: said, tried again next round
            log.error("alert delivery: %s", " ".join(str(exc).split()) or type(exc).__name__)

    def deliver(self) -> None:
        """One pass: give up the old ones, then claim and send each channel's due alerts."""
        now = utcnow()
        for outbox in self.outboxes:
            outbox.give_up_old(now, self.policy)
        try:
            cfg = load_config()
        except UserError as exc:  # a broken config file: said in the log, tried again next time
            self._say(f"alerts not delivered: {exc}")
            self._can, self._checked = set(), time.monotonic()
            return
        can = set()
        if cfg.smtp.configured:
            can.add("email")
            self._deliver_mail(cfg)
        if self._setup_problems(cfg):
            can.add("notify")
            self._deliver_notices(cfg)
        self._can, self._checked = can, time.monotonic()

    def _claimed(self, outbox: Outbox) -> tuple[str, list[Any], Any]:
        token = f"{self.server}/{uuid.uuid4().hex[:12]}"
        start = time.monotonic()
        claimed = outbox.claim(token, utcnow(), self.policy)
        deadline = start + self.policy.lease - self.policy.margin
        return token, claimed, lambda: time.monotonic() < deadline

    def _deliver_mail(self, cfg: Config) -> None:
        if cfg.smtp.user and cfg.smtp.tls_mode == "none":
            self._say(f"config {cfg.path}: [smtp] logs in as {cfg.smtp.user!r} over a connection without TLS "
                      '(tls = "none"): set tls = "starttls" or "ssl"', logging.WARNING)
        outbox = self.outboxes[0]
        token, claimed, in_time = self._claimed(outbox)
        if not claimed:
            return

        def done(alert: Any, error: str | None, permanent: bool) -> None:
            self._record(outbox, alert, token, error, permanent)

        send_mails(cfg.smtp, claimed, self.server, done, in_time)

    def _deliver_notices(self, cfg: Config) -> None:
        import json

        from .notify import send_notices

        outbox = self.outboxes[1]
        token, claimed, in_time = self._claimed(outbox)
        if not claimed:
            return

        def done(alert: Any, error: str | None, permanent: bool, reached: list[str]) -> None:
            self._record(outbox, alert, token, error, permanent, notify_done=json.dumps(reached))

        send_notices(cfg.notify_urls, claimed, done, in_time)

    def _record(self, outbox: Outbox, alert: Any, token: str, error: str | None, permanent: bool,
                **extra: Any) -> None:
        tries = getattr(alert, outbox.tries.name)
        if error is None:
            if outbox.mark_sent(alert.id, token, **extra):
                log.info("alert %s: %s sent (attempt %s)", alert.id, outbox.label, tries)
            else:
                log.warning("alert %s: %s sent, but its claim had run out meanwhile (another server may send "
                            "it once more)", alert.id, outbox.label)
            return
        state = outbox.mark_failed(alert, token, error, permanent, utcnow(), self.policy, **extra)
        if state == PENDING:
            log.warning("alert %s: %s not sent (attempt %s, tried again in %.0f s): %s", alert.id, outbox.label,
                        tries, self.policy.delay(tries), error)
        elif state == FAILED:
            log.error("alert %s: %s not sent, given up (attempt %s): %s", alert.id, outbox.label, tries, error)
