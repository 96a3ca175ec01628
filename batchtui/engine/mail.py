"""Alert e-mail over SMTP: the connection (TLS always verified) and the sending of claimed alerts.

Only to the addresses the site mails to (recipients.py, the config of the
batch server that sends): any other is refused for good, with a line in the
log. Which alerts are sent, when they are tried again and by which server is
delivery.py's business; this module sends what it is given and reports each
alert's outcome through a callback, at once, so that a mail is marked sent
right after its own send.

TLS (``[smtp] tls``): ``"starttls"`` upgrades a plain connection (a server
that does not offer STARTTLS is an error, never a fall-back to plain text),
``"ssl"`` is TLS from the first byte (port 465), ``"none"`` is plain SMTP.
Either TLS mode verifies the certificate chain and the host name with
``ssl.create_default_context`` (the system's CAs, or ``cafile``); nothing
turns the verification off.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from ..config import SmtpSettings
from ..recipients import RecipientRefused

log = logging.getLogger("batchtui.engine")

SMTP_TIMEOUT = 20.0  # seconds for each network operation of a connection

#: done(alert, error, permanent): error None when sent; permanent when trying again cannot help.
Done = Callable[[Any, "str | None", bool], None]


def tls_context(smtp: SmtpSettings) -> ssl.SSLContext:
    """A client context that verifies the chain and the host name; cafile replaces the system's CAs."""
    cafile = os.path.expanduser(smtp.cafile) if smtp.cafile else None
    context = ssl.create_default_context(cafile=cafile)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


def connect(smtp: SmtpSettings) -> smtplib.SMTP:
    """An SMTP connection as the config asks, logged in when a user is set."""
    mode = smtp.tls_mode
    conn: smtplib.SMTP
    if mode == "ssl":
        conn = smtplib.SMTP_SSL(smtp.host, smtp.port_number, timeout=SMTP_TIMEOUT, context=tls_context(smtp))
    else:
        conn = smtplib.SMTP(smtp.host, smtp.port_number, timeout=SMTP_TIMEOUT)
    try:
        if mode == "starttls":
            conn.starttls(context=tls_context(smtp))  # SMTPNotSupportedError when not offered: no plain fall-back
        if smtp.user:
            conn.login(smtp.user, smtp.password)
    except BaseException:
        conn.close()
        raise
    return conn


def describe(exc: BaseException, smtp: SmtpSettings) -> str:
    """One line for the log and the alert's last error."""
    where = f"{smtp.host}:{smtp.port_number}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"SMTP server {where}: its TLS certificate is not trusted ({exc.verify_message}); "
                "set [smtp] cafile to the CA that signed it")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"SMTP server {where} does not offer STARTTLS (tls = \"starttls\")"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"SMTP server {where}: {text}"


def plain(text: str) -> str:
    """An alert's text as any mail or chat service takes it: a lone surrogate (a job description
    from a broken terminal) written as its escape instead of failing the whole send."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def subject(text: str) -> str:
    return (plain(text).splitlines() or [""])[0][:150]


def _message(alert: Any, to: str, smtp: SmtpSettings, server: str) -> EmailMessage:
    msg = EmailMessage()
    sender = smtp.sender or f"batchtui@{server}"
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject(alert.message)
    msg["Date"] = formatdate(localtime=False)
    # The same for every try of one alert: a mail client shows a re-sent one once.
    domain = sender.rpartition("@")[2] or "batchtui"
    msg["Message-ID"] = f"<batchtui.alert.{int(alert.id)}.{alert.created:%Y%m%d%H%M%S}@{domain}>"
    msg["X-Batchtui-Server"] = server  # which batch server sent it
    msg.set_content(plain(alert.message))
    return msg


def _permanent(exc: smtplib.SMTPException) -> bool:
    """A 5xx answer to this message: sending it again gets the same answer."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


def _addressed(smtp: SmtpSettings, alerts: Sequence[Any], done: Done) -> list[tuple[Any, str]]:
    """The alerts with the address each goes to; those that have none are failed for good."""
    outgoing = []
    for alert in alerts:
        try:
            to = smtp.recipients.address(alert.user)
        except RecipientRefused as exc:
            done(alert, str(exc), True)
            continue
        if to is None:
            done(alert, f"no e-mail address for user {alert.user!r} (set [smtp] domain)", True)
            continue
        outgoing.append((alert, to))
    return outgoing


def send_mails(smtp: SmtpSettings, alerts: Sequence[Any], server: str, done: Done,
               in_time: Callable[[], bool]) -> None:
    """Send each alert's e-mail over one connection, reporting each outcome to done.

    in_time() is asked before each send: once it says no (the claim's lease is running out),
    the alerts not sent yet are reported as not tried ("no time left"), to be tried again.
    """
    outgoing = _addressed(smtp, alerts, done)
    if not outgoing:
        return
    try:
        conn = connect(smtp)
    except (OSError, smtplib.SMTPException) as exc:
        reason = describe(exc, smtp)  # a bad login or certificate may be fixed in the config: kept too
        for alert, _ in outgoing:
            done(alert, reason, False)
        return
    left = list(outgoing)
    try:
        while left:
            alert, to = left[0]
            if not in_time():
                break
            try:
                message = _message(alert, to, smtp, server)
            except (ValueError, TypeError) as exc:  # nothing a retry would change
                left.pop(0)
                done(alert, f"cannot be made into a mail: {exc}", True)
                continue
            try:
                conn.send_message(message)
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
                left.pop(0)
                done(alert, describe(exc, smtp), _permanent(exc))
                try:
                    conn.rset()
                except (OSError, smtplib.SMTPException):
                    break
                continue
            left.pop(0)
            done(alert, None, False)
    except (OSError, smtplib.SMTPException) as exc:  # the connection broke: this one and the rest later
        reason = describe(exc, smtp)
        for alert, _ in left:
            done(alert, reason, False)
        left = []
    finally:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()
    for alert, _ in left:
        done(alert, "not tried: the claim's time ran out", False)
