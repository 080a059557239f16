"""How many jobs a sweep keeps in flight: :data:`settings` (``comfy_nb.sweep.settings``) and
:func:`resolve_concurrency`, which weighs the arguments, the settings, the Comfy Cloud plan and
the kind of server (a pool of servers: the jobs its members run at once together).

The plan limits of Comfy Cloud and ``$COMFY_CLOUD_TIER`` are in :mod:`comfy_nb._cloud_plans`.
Must not: connect or run anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._cloud_plans import TIER_CONCURRENCY, TIER_VARIABLE, named_plan, plan_limit

__all__ = ["TIER_CONCURRENCY", "TIER_VARIABLE", "SweepSettings", "resolve_concurrency",
           "settings"]

@dataclass
class SweepSettings:
    """How many jobs a sweep keeps in flight when ``concurrency=`` is not given."""

    #: every sweep keeps this many jobs in flight (None: decided by the server, below)
    concurrency: int | None = None
    #: your Comfy Cloud plan, when you know it: "standard" (1), "creator" (3) or "pro" (5);
    #: None reads ``$COMFY_CLOUD_TIER``
    tier: str | None = None
    #: Comfy Cloud with an unknown plan (Creator's limit: on Standard, 2 jobs wait in the queue)
    cloud_concurrency: int = 3
    #: a local ComfyUI (it runs one job at a time; one more waits so the GPU never idles)
    local_concurrency: int = 2


settings = SweepSettings()


def resolve_concurrency(dialect: str, concurrency: int | None = None,
                        tier: str | None = None, capacity: int | None = None) -> int:
    """How many jobs a sweep keeps in flight, the first that is given of: ``concurrency``; on
    Comfy Cloud the limit of the plan ``tier`` names; ``settings.concurrency``; on a pool
    (dialect ``"pool"``) its ``capacity``, the sum of its members' (so each member has as many
    jobs as it runs at once); on Comfy Cloud the plan in ``settings.tier`` or
    ``$COMFY_CLOUD_TIER``, else ``settings.cloud_concurrency``; on a local server
    ``settings.local_concurrency``."""

    cloud = dialect == "cloud"
    chosen: Any = concurrency
    if chosen is None and tier is not None:
        limit = plan_limit(tier)
        chosen = limit if cloud else None
    if chosen is None:
        chosen = settings.concurrency
    if chosen is None and dialect == "pool" and capacity is not None:
        chosen = capacity
    if chosen is None:
        plan = (settings.tier or named_plan()) if cloud else None
        chosen = (plan_limit(plan) if plan else settings.cloud_concurrency) if cloud \
            else settings.local_concurrency
    if isinstance(chosen, bool) or not isinstance(chosen, int) or chosen < 1:
        raise ValueError(f"concurrency must be a whole number of at least 1, not {chosen!r}")
    return chosen
