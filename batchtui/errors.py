"""Errors a user can cause. The command line turns them into exit 2 and one line."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, an unknown id, a refused transition, or an action not allowed.

    The message is shown to the user as it is: it names what is wrong and why.
    """


class NotFound(UserError):
    pass


class Refused(UserError):
    """The status machine refused a transition."""


class NotAllowed(UserError):
    """The acting user may not do this to that job."""


class Conflict(UserError):
    """The record was changed by another user since it was read."""
