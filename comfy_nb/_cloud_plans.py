"""The plans of Comfy Cloud and how many jobs each runs at once (:data:`TIER_CONCURRENCY`), and
the plan a user names in ``$COMFY_CLOUD_TIER`` (:func:`plan_limit`, :func:`named_plan`).

Comfy Cloud answers no question about a user's plan, so whoever needs its limit (sweeps, pools,
the emulator's Cloud) reads it here. Must not: connect or run anything.
"""

from __future__ import annotations

import os

__all__ = ["TIER_CONCURRENCY", "TIER_VARIABLE", "named_plan", "plan_limit"]

#: jobs Comfy Cloud runs at once, by plan
TIER_CONCURRENCY = {"standard": 1, "creator": 3, "pro": 5}
TIER_VARIABLE = "COMFY_CLOUD_TIER"


def plan_limit(plan: str) -> int:
    """How many jobs the Comfy Cloud plan ``plan`` runs at once; ValueError for an unknown one."""
    key = plan.strip().lower()
    if key not in TIER_CONCURRENCY:
        raise ValueError(f"unknown Comfy Cloud tier {plan!r}: use one of "
                         f"{', '.join(TIER_CONCURRENCY)}")
    return TIER_CONCURRENCY[key]


def named_plan() -> str | None:
    """The plan ``$COMFY_CLOUD_TIER`` names, if it is set."""
    return os.environ.get(TIER_VARIABLE) or None
