"""Batch groups (System administration > Setup > Batch group): which batch servers run
which tasks. The command line and the console's Batch groups form both use it.

Anyone may list them; only a batch job manager changes them (on PostgreSQL a
member of batchtui_manager, which the database enforces too: schema version
5). A group mapped to a server that does not exist stops every task of the
group, everyone's, so it is a setting of the batch framework, as in the ERP,
not of one user's jobs.
"""

from __future__ import annotations

from . import jobfile
from . import models as m
from .actor import Actor
from .db import write
from .errors import NotAllowed, NotFound, Refused, UserError
from .jobfile import q


def group_rows() -> list[dict]:
    """Batch groups with the servers assigned to them, by name."""
    servers: dict[str, list[str]] = {}
    for group, server in m.tuples(m.BatchGroupServer.select(m.BatchGroupServer.group, m.BatchGroupServer.server)
                                  .order_by(m.BatchGroupServer.server)):
        servers.setdefault(group, []).append(server)
    return [{"name": g.name, "description": g.description, "servers": servers.get(g.name, [])}
            for g in m.BatchGroup.select().order_by(m.BatchGroup.name)]


def check_may_change_groups(actor: Actor) -> None:
    """Batch groups and their servers are changed by batch job managers only."""
    if not actor.is_manager:
        raise NotAllowed(f"user {actor.user!r} may not change batch groups: only a batch job manager may "
                         "(on PostgreSQL a member of batchtui_manager)")


def save_group(name: str, *, actor: Actor, description: str | None = None, servers=None,
               field: str = "NAME", new: bool = False) -> bool:
    """Add a batch group or update it; servers (a list) replaces its servers.

    With new=True (the console's New record) an existing group is refused
    rather than updated. Returns True when the group was created.
    """
    check_may_change_groups(actor)
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
        created = group is None
        if created:
            m.BatchGroup.create(name=name, description=description or "")
        elif description is not None:
            m.BatchGroup.update(description=description).where(m.BatchGroup.name == name).execute()
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
