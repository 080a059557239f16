"""A pool (several servers behind one client, :class:`comfy_nb.Pool`) in a notebook: the
connection banner that names each member (URL, dialect, version, capacity, whether it answers),
and the lanes of a sweep on a pool (each member's items: running, queued, done, failed) as the
sweep panels and the grid's table show them.

Owns: reading a pool's members on the pool's own loop thread (where they change) and the
wording of both displays. Must not: speak HTTP itself (the members' clients do) or choose
members (the pool does).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    from ..client import Client, Pool
    from ..sweeps import SweepData

__all__ = ["describe_pool", "is_pool", "lane_lines", "lanes_html"]


def is_pool(client: Client) -> TypeGuard[Pool]:
    """Whether ``client`` is a pool of servers."""
    from ..client import Pool

    return isinstance(client, Pool)


def describe_pool(pool: Pool) -> str:
    """The banner of a pool: a line for the pool, one per member (URL, dialect and version,
    capacity; a member that does not answer says so) and the warnings of the members, each
    once (the emulator's stand-in pixels, a public Binder session)."""
    members = pool.loop.run(_members(pool), timeout=60)
    slots = sum(member["capacity"] for member in members)
    lines = [f"comfy_nb: connected to a pool of {len(members)} servers ({slots} "
             f"job{'' if slots == 1 else 's'} at once):"]
    warnings: list[str] = []
    for member in members:
        if member["up"]:
            version = member["version"] or "?"
            lines.append(f"  {member['server']} ({member['dialect']}, version {version}) · "
                         f"capacity {member['capacity']}")
        else:
            lines.append(f"  {member['server']} · capacity {member['capacity']} · not "
                         "answering: it joins the pool when it does")
        warnings += [line for line in member["warnings"] if line not in warnings]
    return "\n".join(lines + warnings)


async def _members(pool: Pool) -> list[dict[str, Any]]:
    """Each member's lane, dialect, version and the warnings its own banner has (read on the
    pool's loop; a member that does not answer is not asked)."""
    found = []
    for lane, client in zip(pool.async_client.lanes(), pool.members, strict=True):
        warnings: list[str] = []
        if lane["up"]:
            warnings = (await client.describe()).splitlines()[1:]
        found.append({**lane, "dialect": client.dialect, "version": client.server_version,
                      "warnings": warnings})
    return found


# -- the lanes of a sweep ------------------------------------------------------------------------


def lane_lines(sweep: SweepData) -> list[str]:
    """A line per member of the sweep's pool (none for a sweep on one server)."""
    return [f"  {lane['server']} (capacity {lane['capacity']}): running {lane['running']} · "
            f"queued {lane['queued']} · done {lane['done']}"
            + "".join(f" · {name} {lane[name]}" for name in ("failed", "cancelled")
                      if lane[name])
            for lane in sweep.lanes()]


_LANE_COLUMNS = ("server", "capacity", "running", "queued", "done", "failed", "cancelled")
_LANE_CELL = "padding:0 6px"


def lanes_html(sweep: SweepData) -> str:
    """The lanes as a small table (empty for a sweep on one server)."""
    lanes = sweep.lanes()
    if not lanes:
        return ""
    esc = html.escape
    head = "".join(f"<th style=\"{_LANE_CELL}\">{name}</th>" for name in _LANE_COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td style=\"{_LANE_CELL}\">{esc(str(lane[name]))}</td>"
                                    for name in _LANE_COLUMNS) + "</tr>" for lane in lanes)
    return f"<table class=\"comfy-nb-sweep-lanes\"><tr>{head}</tr>{rows}</table>"
