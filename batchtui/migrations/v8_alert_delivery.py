"""Schema version 8: alert e-mail and chat/webhook notices kept until delivered (issue 15).

Before, an alert's e-mail was marked ``mailed`` before it was sent and was
lost when the send failed. Now each way of delivery has its state on the
alert row, per channel (``email_*`` and ``notify_*``):

- ``*_state``: NULL (the alert asked for none), ``pending``, ``sent``,
  ``failed`` (given up: refused for good, or not sent within 24 h);
- ``*_tries``: attempts so far; a claim is a compare-and-set on it;
- ``*_next``: not before this time (naive UTC): the next retry, or the end
  of the lease of the server that claimed it;
- ``*_claim``: the claim token of the server sending it now;
- ``*_error``: the last error;
- ``notify_done``: the URLs (digests) a notice reached already, so a retry
  goes only to the others.

``job_alert.notify`` is the new alert flag (default false). The alerts that
exist get ``email_state`` from ``mailed`` (sent when mailed, else pending;
pending ones older than 24 h are given up by the first batch server that
looks). ``mailed`` stays, no longer read. Two partial indexes find the due
deliveries among many alerts.

Frozen: fields and values written out.
"""

from __future__ import annotations

from peewee import PostgresqlDatabase

INDEXES = [
    "CREATE INDEX IF NOT EXISTS alert_email_due ON alert (email_next) WHERE email_state = 'pending'",
    "CREATE INDEX IF NOT EXISTS alert_notify_due ON alert (notify_next) WHERE notify_state = 'pending'",
]


def apply(db, migrator) -> None:
    # Raw ALTERs rather than playhouse: the NOT NULL columns keep a DEFAULT in the database, so a
    # row written by hand (or by a tool that knows the older schema) still goes in.
    pg = isinstance(db, PostgresqlDatabase)
    time, boolean, false = ("TIMESTAMP", "BOOLEAN", "false") if pg else ("DATETIME", "INTEGER", "0")
    for channel in ("email", "notify"):
        db.execute_sql(f'ALTER TABLE alert ADD COLUMN "{channel}_state" VARCHAR(8)')
        db.execute_sql(f'ALTER TABLE alert ADD COLUMN "{channel}_tries" INTEGER NOT NULL DEFAULT 0')
        db.execute_sql(f'ALTER TABLE alert ADD COLUMN "{channel}_next" {time}')
        db.execute_sql(f'ALTER TABLE alert ADD COLUMN "{channel}_claim" VARCHAR(120)')
        db.execute_sql(f'ALTER TABLE alert ADD COLUMN "{channel}_error" TEXT')
    db.execute_sql('ALTER TABLE alert ADD COLUMN "notify_done" TEXT')
    db.execute_sql(f'ALTER TABLE job_alert ADD COLUMN "notify" {boolean} NOT NULL DEFAULT {false}')
    db.execute_sql("UPDATE alert SET email_state = CASE WHEN mailed THEN 'sent' ELSE 'pending' END WHERE email")
    for sql in INDEXES:
        db.execute_sql(sql)
