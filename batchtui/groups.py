"""Batch groups (System administration > Setup > Batch group): which batch servers run
which tasks. The command line and the console's Batch groups form both use it.

Anyone may list them; only a batch job manager changes them (on PostgreSQL a
member of batchtui_manager, which the database enforces too: schema version
5). A group mapped to a server that does not exist stops every task of the
group, everyone's, so it is a setting of the batch framework, as in the ERP,
not of one user's jobs.
"""

from __future__ import annotations

from typing import Any

from peewee import fn

from . import jobfile
from . import models as m
from .actor import Actor
from .db import write
from .errors import NotAllowed, NotFound, Refused, UserError
from .jobfile import q
from .servers import RUNNING

#: Batch concurrency control: at most N running tasks; 0 no limit; -1 stopped.
NO_LIMIT, STOPPED = 0, -1
MAX_CONCURRENT = 10_000


def check_max_concurrent(value: Any, name: str = "") -> int:
    """-1 (stopped), 0 (no limit) or the most tasks of the group that run at once."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise UserError(f"batch group {q(name)}: max concurrent tasks must be a whole number, not {q(value)}") \
            from None
    if isinstance(value, float) and value != n or isinstance(value, bool):
        raise UserError(f"batch group {q(name)}: max concurrent tasks must be a whole number, not {q(value)}")
    if n < STOPPED or n > MAX_CONCURRENT:
        raise UserError(f"batch group {q(name)}: max concurrent tasks must be -1 (stopped), 0 (no limit) or "
                        f"1 to {MAX_CONCURRENT}, not {n}")
    return n


def limit_text(max_concurrent: int) -> str:
    """The limit as the Batch groups form and `group list` show it."""
    if max_concurrent == STOPPED:
        return "stopped"
    return "no limit" if max_concurrent == NO_LIMIT else str(max_concurrent)


def running_by_group() -> dict[str, int]:
    """How many tasks of each batch group run now, on any server."""
    query = (m.BatchTask.select(m.BatchTask.batch_group, fn.COUNT(m.BatchTask.id))
             .where(m.BatchTask.status << [int(s) for s in RUNNING]).group_by(m.BatchTask.batch_group))
    return {str(g): int(n) for g, n in m.tuples(query)}


def group_rows() -> list[dict]:
    """Batch groups with the servers assigned to them, by name."""
    servers: dict[str, list[str]] = {}
    for group, server in m.tuples(m.BatchGroupServer.select(m.BatchGroupServer.group, m.BatchGroupServer.server)
                                  .order_by(m.BatchGroupServer.server)):
        servers.setdefault(group, []).append(server)
    running = running_by_group()
    return [{"name": g.name, "description": g.description, "servers": servers.get(g.name, []),
             "max_concurrent": g.max_concurrent, "running": running.get(g.name, 0)}
            for g in m.BatchGroup.select().order_by(m.BatchGroup.name)]


def check_may_change_groups(actor: Actor) -> None:
    """Batch groups and their servers are changed by batch job managers only."""
    if not actor.is_manager:
        raise NotAllowed(f"user {actor.user!r} may not change batch groups: only a batch job manager may "
                         "(on PostgreSQL a member of batchtui_manager)")


def save_group(name: str, *, actor: Actor, description: str | None = None, servers=None,
               field: str = "NAME", new: bool = False, max_concurrent: Any = None,
               must_exist: bool = False) -> bool:
    """Add a batch group or update it; servers (a list) replaces its servers.

    With new=True (the console's New record) an existing group is refused
    rather than updated; with must_exist=True (`group set`) a missing one is.
    max_concurrent (batch concurrency control) is for batch job managers
    only. Returns True when the group was created.
    """
    check_may_change_groups(actor)
    if max_concurrent is not None:
        from .periods import check_manager

        check_manager(actor, "change batch group settings")
        max_concurrent = check_max_concurrent(max_concurrent, name if isinstance(name, str) else "")
    name = jobfile.check_group_name(name, field=field)
    if name != name.strip():
        raise UserError(f"batch group {q(name)}: a name cannot start or end with spaces")
    if description is not None:
        description = jobfile.check_text(description, limit=200, field="description", allow_empty=True)
    if servers is not None:
        servers = sorted({jobfile.check_text(s, limit=80, field="servers", what="a server name")
                          for s in servers})
    with write():
        group = m.BatchGroup.get_or_none(m.BatchGroup.name == name)
        if new and group is not None:
            raise UserError(f"batch group {q(name)} exists already")
        if must_exist and group is None:
            raise NotFound(f"batch group {q(name)}: no such batch group (add it with `batchtui group add`)")
        created = group is None
        if created:
            m.BatchGroup.create(name=name, description=description or "", max_concurrent=max_concurrent or 0)
        else:
            changes: dict[str, Any] = {}
            if description is not None:
                changes["description"] = description
            if max_concurrent is not None:
                changes["max_concurrent"] = max_concurrent
            if changes:
                m.BatchGroup.update(**changes).where(m.BatchGroup.name == name).execute()
        if servers is not None:
            m.BatchGroupServer.delete().where(m.BatchGroupServer.group == name).execute()
            for s in servers:
                m.BatchGroupServer.create(group=name, server=s)
    return created


def delete_group(name: str, *, actor: Actor) -> None:
    """Delete a batch group no task uses; the Empty batch group stays."""
    check_may_change_groups(actor)
    with write():
        if name == "":
            raise Refused("the Empty batch group cannot be deleted")
        if m.BatchGroup.get_or_none(m.BatchGroup.name == name) is None:
            raise NotFound(f"batch group {q(name)}: no such batch group")
        users = sorted({t.job_id for t in m.BatchTask.select(m.BatchTask.job)
                        .where(m.BatchTask.batch_group == name)})
        if users:
            shown = ", ".join(str(j) for j in users[:20]) + (", ..." if len(users) > 20 else "")
            raise Refused(f"batch group {q(name)} is used by tasks of job{'s' if len(users) > 1 else ''} "
                          f"{shown}: move those tasks to another batch group first")
        m.BatchGroup.delete().where(m.BatchGroup.name == name).execute()
