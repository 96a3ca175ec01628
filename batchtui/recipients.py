"""Who alert e-mail may go to: the site's own domain, and the config's allow-list.

An alert's user is any name its job's owner types. One that holds ``@`` was
used as the recipient as it stood, so any job owner could make a batch
server send mail through the site's SMTP account to any address in the
world. Now an address is mailed only if it is at the ``[smtp] domain``, or
listed in ``[smtp] allowed_recipients`` (a whole address,
``"ops@partner.example"``, or a whole domain, ``"@partner.example"``;
a domain means that domain, not its subdomains). A user name without
``@`` gets the domain, as before. Anything else, and anything that is not
one plain address (a comma, a space, a display name, an address hidden in
angle brackets), is refused: when the alert is saved (``job import``, the
Alerts dialog), with a line that says so, and again by the batch server
that mails it (the config it reads is the one that counts), which skips it
with a line in its log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import UserError

__all__ = ["DeliverySetup", "RecipientRefused", "Recipients", "check_allow_list"]

# A dot-atom local part and a host name: one plain address, nothing a mail header would read as more.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"({_LOCAL})@({_DOMAIN})")
_AT_DOMAIN = re.compile(rf"@({_DOMAIN})")


class RecipientRefused(UserError):
    """An alert user whose e-mail is not sent: outside the allowed domains, or not one plain address."""


@dataclass(frozen=True, slots=True)
class Recipients:
    """The site's domain and allow-list, as the config file gives them (lower case)."""

    domain: str = ""
    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, domain: str = "", allowed: Iterable[str] = ()) -> Recipients:
        allowed = [a.strip().lower() for a in allowed]
        return cls(domain.strip().lower().lstrip("@"), frozenset(a for a in allowed if not a.startswith("@")),
                   frozenset(a[1:] for a in allowed if a.startswith("@")))

    def address(self, user: str) -> str | None:
        """The address an alert for user is mailed to; None when there is none (a plain user name
        and no domain configured). Raises RecipientRefused for an address that is not allowed."""
        if "@" not in user:
            if not self.domain:
                return None
            address = f"{user}@{self.domain}"
            if not _ADDRESS.fullmatch(address):
                raise RecipientRefused(f"user {user!r} has no e-mail address: {address!r} is not one plain "
                                       "address")
            return address
        match = _ADDRESS.fullmatch(user)
        if match is None:
            raise RecipientRefused(f"e-mail to {user!r} is refused: it is not one plain address (name@domain)")
        host = match.group(2).lower()
        if host == self.domain or host in self.domains or user.lower() in self.addresses:
            return user
        allowed = " or ".join(filter(None, (f"at {self.domain}" if self.domain else "",
                                            "listed in [smtp] allowed_recipients")))
        raise RecipientRefused(f"e-mail to {user!r} is refused: alerts are mailed only to addresses {allowed} "
                               "of the config file")


def check_allow_list(value: object) -> list[str]:
    """``[smtp] allowed_recipients`` as the config file gives it; ValueError says what is wrong."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("allowed_recipients must be a list of addresses (\"ops@partner.example\") or "
                         "domains (\"@partner.example\")")
    for v in value:
        if not (_ADDRESS.fullmatch(v.strip()) or _AT_DOMAIN.fullmatch(v.strip())):
            raise ValueError(f"allowed_recipients: {v!r} is neither an address (\"ops@partner.example\") nor "
                             "a domain (\"@partner.example\")")
    return value


@dataclass(frozen=True, slots=True)
class DeliverySetup:
    """Why this machine's config would not deliver an alert's e-mail or notice (None: it would).

    Said as a warning when such an alert is saved (``job import``, the Alerts dialog): the
    alert is saved all the same, and its delivery stays pending until a batch server whose
    config can send it does (given up after 24 h).
    """

    email: str | None = None
    notify: str | None = None

    def warnings(self, *, email: bool, notify: bool) -> list[str]:
        return [w for w, asked in ((self.email, email), (self.notify, notify)) if asked and w]
