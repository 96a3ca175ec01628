"""Who is acting, built once by the command line, the console or the engine.

Every service takes an ``Actor`` instead of reading the config file or the
database session on each call: the user at the keyboard (or the batch
server's account), the batch job managers that apply to them, the
default company for new records, and who alert e-mail may go to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import NotAllowed
from .recipients import DeliverySetup, Recipients


@dataclass(frozen=True)
class Actor:
    user: str
    managers: frozenset[str] = field(default_factory=frozenset)
    default_company: str = "DAT"
    recipients: Recipients = field(default_factory=Recipients)  # the config's [smtp] domain and allow-list
    delivery: DeliverySetup = field(default_factory=DeliverySetup)  # what the config cannot deliver (warnings)

    @classmethod
    def of(cls, user: str, managers: Iterable[str] = (), default_company: str = "DAT",
           recipients: Recipients | None = None, delivery: DeliverySetup | None = None) -> Actor:
        return cls(user, frozenset(managers), default_company, recipients or Recipients(),
                   delivery or DeliverySetup())

    @classmethod
    def current(cls, user: str | None = None) -> Actor:
        """The acting user of this process and the managers that apply to them.

        On PostgreSQL the database role decides both (see identity.py); on
        SQLite BATCHTUI_USER or the login name, and the config file's list.
        A database must be open for the PostgreSQL answer.
        """
        from .config import acting_user, load_config
        from .identity import managers

        config = load_config()
        return cls(user or acting_user(), frozenset(managers(config.managers)), config.default_company,
                   config.smtp.recipients, config.delivery)

    @property
    def is_manager(self) -> bool:
        return "*" in self.managers or self.user in self.managers

    def may_manage(self, owner: str) -> bool:
        """The owner of a record or a batch job manager may change it."""
        return self.user == owner or self.is_manager

    def check_may_manage(self, job_id: int, owner: str) -> None:
        if not self.may_manage(owner):
            raise NotAllowed(
                f"job {job_id}: user {self.user!r} may not change it (only its owner "
                f"{owner!r} or a batch job manager may)"
            )
