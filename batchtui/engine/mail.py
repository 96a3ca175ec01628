"""E-mail for alerts whose user asked for it, when SMTP is configured.

Only to the addresses the site mails to (recipients.py, the config of the
batch server that sends): any other is skipped, with a line in the log.
"""

from __future__ import annotations

import logging
import smtplib
import threading
from email.message import EmailMessage

from ..config import load_config
from ..errors import UserError
from ..recipients import RecipientRefused
from .store import EngineStore

log = logging.getLogger("batchtui.engine")


def send_alert_mails(store: EngineStore, server: str) -> int:
    """Claim unsent e-mail alerts (compare-and-set, in the store) and send them in the background."""
    claimed = store.claim_alert_mails()
    if not claimed:
        return 0
    try:
        cfg = load_config()
    except UserError as exc:  # a broken config file: said in the log, tried again next time
        log.error("alerts not mailed: %s", exc)
        return 0
    if not cfg.smtp.configured:
        return 0
    threading.Thread(target=_send, args=(cfg.smtp, claimed, server), daemon=True).start()
    return len(claimed)


def _send(smtp, alerts, server: str) -> None:
    outgoing = []
    recipients = smtp.recipients
    for alert in alerts:
        try:
            to = recipients.address(alert.user)
        except RecipientRefused as exc:
            log.warning("alert %s: not mailed: %s", alert.id, exc)
            continue
        if to is None:
            log.warning("alert %s: no e-mail address for user %r (set smtp.domain)", alert.id, alert.user)
            continue
        outgoing.append((alert, to))
    if not outgoing:
        return
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=20) as conn:
            if smtp.starttls:
                conn.starttls()
            if smtp.user:
                conn.login(smtp.user, smtp.password)
            for alert, to in outgoing:
                msg = EmailMessage()
                msg["From"] = smtp.sender or f"batchtui@{server}"
                msg["To"] = to
                msg["Subject"] = alert.message.splitlines()[0][:150]
                msg.set_content(alert.message)
                conn.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("alert e-mail not sent: %s", exc)
