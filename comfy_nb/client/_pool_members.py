"""The members of a pool (:mod:`comfy_nb.client._pool`): which servers a ``url`` argument names
(:func:`pool_urls`), which key each gets (:func:`member_keys`), and each member's standing
(:class:`Member`: its capacity, given or learnt, the jobs placed on it, whether it answers,
and how soon it would start a job placed now, the order the pool chooses by).

Must not: submit or follow jobs (the pool's parts do, through each member's client).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._cloud_plans import named_plan, plan_limit
from .._secret import Secret
from ..errors import ComfyError, TransportError
from ._dialects import JobStatus

if TYPE_CHECKING:
    from ..job import AsyncJob
    from ._client import AsyncClient

__all__ = ["REJOIN_AFTER", "KeyArgument", "Member", "Members", "member_keys", "pool_urls",
           "refuses_connections"]

KeyArgument = str | Secret | Mapping[str, str | Secret | None] | None
REJOIN_AFTER = 5.0  # seconds before a server that refused connections is tried again


def pool_urls(url: str | Iterable[str] | None) -> list[str] | None:
    """The members a ``url`` argument names when it names more than one (a list, or a string
    with commas, as ``COMFY_URL`` may hold); None for a single server."""
    if not isinstance(url, (str, list, tuple)):  # (a single client explains a wrong type)
        return None
    entries = url.split(",") if isinstance(url, str) else list(url)
    if isinstance(url, str) and len(entries) < 2:
        return None
    urls = [entry.strip() for entry in entries if isinstance(entry, str) and entry.strip()]
    if len(urls) != len(entries):
        raise ValueError("a pool's servers are URLs (or 'cloud'), none of them empty")
    if not urls:
        raise ValueError("a pool needs at least one server")
    if len(set(urls)) != len(urls):
        raise ValueError(f"a server is named twice in {urls}")
    return urls


def member_keys(urls: list[str], api_key: KeyArgument) -> dict[str, Secret | None]:
    """Each member's key. A mapping gives each member its own (by URL); one key is given only
    when exactly one member is ``"cloud"`` (it goes there); without a key each member finds its
    own as a single client would (``COMFY_CLOUD_API_KEY`` only for Comfy Cloud, ``COMFY_API_KEY``
    only for the origin of ``COMFY_BASE_URL``). No key ever goes to another member."""
    if api_key is None:
        return dict.fromkeys(urls)
    if isinstance(api_key, Mapping):
        unknown = [url for url in api_key if url not in urls]
        if unknown:
            raise ValueError(f"api_key names servers that are not in the pool: {unknown}")
        return {url: Secret.of(api_key.get(url), "api_key") for url in urls}
    key = Secret.of(api_key, "api_key")
    clouds = [url for url in urls if _is_cloud(url)]
    if len(clouds) != 1:
        raise ValueError("a pool sends each key to one server only: pass api_key={url: key, ...}")
    return {url: (key if url in clouds else None) for url in urls}


def _is_cloud(url: str) -> bool:
    """Whether ``url`` names Comfy Cloud (``"cloud"``, or its URL)."""
    from .._config import cloud_url, normalize_url
    from ..errors import InvalidURL

    try:
        return normalize_url(url) == cloud_url()
    except (InvalidURL, TypeError):
        return False


@dataclass
class Member:
    """One server of a pool: its client, how many jobs it runs at once (:attr:`capacity`), and
    the jobs the pool has placed there."""

    client: AsyncClient
    given: int | None  # the capacity said for it (``capacity={url: n}``), None: learnt
    index: int
    seen_running: int = 0  # the most of its jobs seen running at the same time
    reserved: int = 0  # runs on their way there (chosen, not yet submitted or ended)
    jobs: set[AsyncJob] = field(default_factory=set)  # jobs submitted there, until they end
    down_since: float | None = None  # when it last refused a connection (None: answering)
    opened: bool = False  # its client connected (a server down when the pool opened is not)
    failure: ComfyError | None = None  # why it could not be connected to, last time

    @property
    def capacity(self) -> int:
        """How many jobs it runs at once: as given; else a local ComfyUI 1 (it has one prompt
        worker), Comfy Cloud the limit of the plan ``$COMFY_CLOUD_TIER`` names (1, the smallest
        plan with API access, when unset), any other 1; and never fewer than the most of its
        jobs seen running at once (a Cloud plan or a v2 deployment larger than assumed shows
        itself when a job placed beyond its slots starts at once)."""
        if self.given is not None:
            return self.given
        assumed = 1
        if self.opened and self.client.dialect == "cloud":
            plan = named_plan()
            assumed = plan_limit(plan) if plan else 1
        return max(assumed, self.seen_running)

    @property
    def placed(self) -> int:
        """The runs placed here that have not ended (read when asked: a job that ended a
        moment ago no longer counts, whoever learnt it first)."""
        self.jobs = {job for job in self.jobs if not (job.done or job.lost)}
        running = sum(job.status is JobStatus.RUNNING for job in self.jobs)
        self.seen_running = max(self.seen_running, running)
        return self.reserved + len(self.jobs)

    @property
    def url(self) -> str:
        return self.client.url

    def available(self) -> bool:
        """Whether runs may go here: it answers, or it refused long enough ago to be tried
        again (a server that comes back rejoins)."""
        return self.down_since is None or time.monotonic() - self.down_since >= REJOIN_AFTER

    def refused(self) -> None:
        if self.down_since is None or self.available():
            self.down_since = time.monotonic()

    def answered(self) -> None:
        self.down_since = None

    async def connect(self) -> bool:
        """Whether its client is connected, connecting it if it was not and the server may be
        back (see :meth:`available`); a server that cannot be reached counts as refusing."""
        if self.opened:
            return True
        if not self.available():
            return False
        try:
            await self.client.open()
        except TransportError as exc:
            self.failure = exc
            self.refused()
            return False
        self.opened = True
        self.answered()
        return True

    def ahead(self) -> tuple[float, float, int]:
        """How soon a job placed now would start, as a sort key: jobs ahead of it per slot
        (0 with a free slot), then the load per slot, then the pool's order."""
        load = max(self.placed, self.client.queue_remaining or 0)
        slots = self.capacity
        waiting = max(0, load + 1 - slots)
        return waiting / slots, load / slots, self.index

    def lane(self) -> dict[str, Any]:
        placed = self.placed
        return {"server": self.url, "capacity": self.capacity, "placed": placed,
                "up": self.down_since is None}


class Members:
    """The members of one pool, shared by its two parts, and which member holds which job."""

    def __init__(self, members: list[Member]) -> None:
        self.all = members
        self.owners: dict[str, Member] = {}
        self.moved: dict[str, str] = {}  # a job's id -> the id of the job that replaced it
        self.ended: set[str] = set()  # jobs this pool was asked to cancel, interrupt or delete

    def current(self, prompt_id: str) -> str:
        """The id of the job that runs in place of ``prompt_id`` now (itself, unless moved)."""
        return self.moved.get(prompt_id, prompt_id)

    @property
    def opened(self) -> list[Member]:
        """The members whose clients are connected (a server down since the pool opened is
        not, until it answers)."""
        return [member for member in self.all if member.opened]

    def ending(self, prompt_ids: Iterable[str]) -> list[str]:
        """``prompt_ids`` (as the jobs running in their place now), noted as asked to end by
        this pool: their interruption is not taken for their server stopping."""
        current = [self.current(prompt_id) for prompt_id in prompt_ids]
        self.ended.update(current)
        return current

    def asked_to_end(self, prompt_id: str) -> bool:
        """Whether this pool was asked to end job ``prompt_id`` (by its id, or by interrupting
        or clearing the member while it ran or waited there)."""
        return prompt_id in self.ended

    def owner(self, prompt_id: str) -> Member | None:
        return self.owners.get(prompt_id)

    def by_owner(self, prompt_ids: list[str]) -> dict[int, tuple[Member, list[str]]]:
        groups: dict[int, tuple[Member, list[str]]] = {}
        for prompt_id in map(self.current, prompt_ids):
            owners = [self.owners[prompt_id]] if prompt_id in self.owners else self.opened
            for member in owners:
                groups.setdefault(member.index, (member, []))[1].append(prompt_id)
        return groups


async def refuses_connections(url: str) -> bool:
    """Whether nothing listens at ``url``'s host and port: the connection is refused (a server
    that does not answer in time may be there still, busy or cut off)."""
    parsed = urllib.parse.urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parsed.hostname or "127.0.0.1", port), 5.0)
    except ConnectionRefusedError:
        return True
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return False
