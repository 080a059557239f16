"""The server part of a pool (:class:`PoolServer`, the :class:`~comfy_nb.client._parts.Server`
a :class:`~comfy_nb.client._pool.AsyncPool` is made of): connecting the members, and the calls
that concern one member (the one holding a job) or all of them (queues, listings, models).

Must not: choose where a run goes, or submit it (the pool's run part does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path
from typing import Any

from ..errors import ComfyError, FeatureUnavailable, NotFoundError
from ._pool_members import Member, Members

__all__ = ["PoolServer"]

log = logging.getLogger("comfy_nb")


class PoolServer:
    """The :class:`~comfy_nb.client._parts.Server` part of a pool: every call goes to the
    member it concerns, or to all of them."""

    def __init__(self, members: Members) -> None:
        self._members = members
        self.client_id = uuid.uuid4().hex
        self.server_version: str | None = None
        self.stats: dict[str, Any] | None = None
        self._closed = False

    @property
    def poll_interval(self) -> float:
        return min(member.client.poll_interval for member in self._members.all)

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        for member in self._members.all:
            member.client.poll_interval = seconds

    @property
    def queue_remaining(self) -> int | None:
        counts = [member.client.queue_remaining for member in self._members.all]
        known = [count for count in counts if count is not None]
        return sum(known) if known else None

    @queue_remaining.setter
    def queue_remaining(self, count: int | None) -> None:
        pass  # each member's websocket keeps its own

    @property
    def url(self) -> str:
        return ", ".join(member.url for member in self._members.all)

    @property
    def dialect(self) -> str:
        return "pool"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def emulator(self) -> Any:
        return None

    async def open(self) -> None:
        """Connect every member that answers (one that does not joins when it does); fails
        when none does, or when one refuses for another reason than being unreachable."""
        members = self._members.all
        try:
            connected = await asyncio.gather(*(member.connect() for member in members))
        except BaseException:
            await self.close()
            raise
        if not any(connected):
            await self.close()
            failure = members[0].failure
            assert failure is not None
            raise failure
        for member in members:
            if not member.opened:
                log.warning("comfy_nb: %s does not answer (%s); it joins the pool when it does",
                            member.url, member.failure)
        versions = sorted({member.client.server_version or "?" for member in members
                           if member.opened})
        self.server_version = ", ".join(versions)

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*(member.client.aclose() for member in self._members.all),
                             return_exceptions=True)

    async def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Each member's recent jobs (up to ``limit`` each), with the ``server`` they are on."""
        found: list[dict[str, Any]] = []
        for member in self._members.opened:
            found += [{**job, "server": member.url} for job in await member.client.jobs(limit)]
        return found

    async def queue(self) -> list[dict[str, Any]]:
        """Every member's queue, with the ``server`` each job is on: running jobs first."""
        entries: list[dict[str, Any]] = []
        for member in self._members.opened:
            entries += [{**entry, "server": member.url} for entry in await member.client.queue()]
        return sorted(entries, key=lambda entry: entry.get("position") != 0)

    async def cancel(self, prompt_id: str) -> bool:
        [prompt_id] = self._members.ending([prompt_id])
        owner = self._members.owner(prompt_id)
        for member in [owner] if owner else self._members.opened:
            if await member.client.cancel(prompt_id):
                return True
        return False

    async def cancel_many(self, prompt_ids: list[str]) -> list[str]:
        live: list[str] = []
        self._members.ending(prompt_ids)
        for member, ids in self._members.by_owner(prompt_ids).values():
            live += await member.client.cancel_many(ids)
        return live

    async def interrupt(self, prompt_id: str | None = None) -> None:
        if prompt_id:
            [prompt_id] = self._members.ending([prompt_id])
        owner = self._members.owner(prompt_id) if prompt_id else None
        for member in [owner] if owner else self._members.opened:
            if not prompt_id:
                await self._ending_on(member, running=True)
            await member.client.interrupt(prompt_id)

    async def clear_queue(self) -> None:
        for member in self._members.opened:
            await self._ending_on(member, running=False)
            await member.client.clear_queue()

    async def _ending_on(self, member: Member, *, running: bool) -> None:
        """Note the jobs running (or waiting) on ``member`` as asked to end by this pool."""
        with contextlib.suppress(ComfyError):  # (the request that ends them says what failed)
            self._members.ending(entry["id"] for entry in await member.client.queue()
                                 if bool(entry.get("running")) is running)

    async def delete(self, prompt_ids: list[str]) -> None:
        self._members.ending(prompt_ids)
        for member, ids in self._members.by_owner(prompt_ids).values():
            await member.client.delete(ids)

    async def download(self, params: dict[str, str], to: Path | None) -> bytes | Path:
        """The file from the first member that has it (a Result downloads its files from the
        member that made it; this is for files named by hand)."""
        missing: NotFoundError | None = None
        for member in self._members.opened:
            try:
                return await member.client.download(params, to)
            except NotFoundError as exc:
                missing = exc
        assert missing is not None
        raise missing

    async def models(self, folder: str | None = "checkpoints") -> list[str]:
        """The model files (or folders) any member has."""
        found: set[str] = set()
        for member in self._members.opened:
            found.update(await member.client.models(folder))
        return sorted(found)

    async def system_stats(self) -> dict[str, Any]:
        """Each member's ``/system_stats``, by URL."""
        return {member.url: await member.client.system_stats() for member in self._members.opened}

    async def user(self) -> dict[str, Any]:
        """The account of each member that has accounts, by URL."""
        accounts = [member for member in self._members.opened
                    if member.client.dialect in ("cloud", "v2")]
        if not accounts:
            raise FeatureUnavailable("no server of the pool has accounts (local servers have "
                                     "none)")
        return {member.url: await member.client.user() for member in accounts}
