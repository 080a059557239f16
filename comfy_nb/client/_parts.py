"""What an :class:`~comfy_nb.AsyncClient` is made of: a :class:`Server` (whatever answers the
calls about the server, its queue and its files) and :class:`Runs` (whatever turns workflows into
jobs and hosts them). A live client is a :class:`~comfy_nb.client._connection.Connection` and a
:class:`~comfy_nb.client._runs.RunPipeline`; a replaying client (:mod:`comfy_nb.recordings`) is
a recording that serves both parts with no server at all.

Must not: implement anything; it names the seam so that both sides can be checked against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._secret import Secret
    from ..job import AsyncJob
    from ..result import Result

__all__ = ["Runs", "Server"]


class Server(Protocol):
    """The server a client talks to (or the recording standing in for one)."""

    client_id: str
    poll_interval: float  # seconds between reads of a job when no websocket hints come
    queue_remaining: int | None
    server_version: str | None
    stats: dict[str, Any] | None  # its system_stats, if read when connecting

    @property
    def url(self) -> str: ...

    @property
    def dialect(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    @property
    def emulator(self) -> Any: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def jobs(self, limit: int = 20) -> list[dict[str, Any]]: ...

    async def queue(self) -> list[dict[str, Any]]: ...

    async def cancel(self, prompt_id: str) -> bool: ...

    async def cancel_many(self, prompt_ids: list[str]) -> list[str]: ...

    async def interrupt(self, prompt_id: str | None = None) -> None: ...

    async def clear_queue(self) -> None: ...

    async def delete(self, prompt_ids: list[str]) -> None: ...

    async def download(self, params: dict[str, str], to: Path | None) -> bytes | Path: ...

    async def models(self, folder: str | None = "checkpoints") -> list[str]: ...

    async def system_stats(self) -> dict[str, Any]: ...

    async def user(self) -> dict[str, Any]: ...


class Runs(Protocol):
    """What turns a client's workflows into jobs, and what follows them."""

    async def submit(self, workflow: Any, *, prompt_id: str | None,
                     extra_data: dict[str, Any] | None, partner_key: bool | str | Secret,
                     front: bool, validate: bool, overrides: dict[str, Any] | None,
                     cache: bool | None, params: dict[str, Any]) -> AsyncJob: ...

    async def prepare(self, workflow: Any, overrides: dict[str, Any],
                      validate: bool) -> tuple[dict[str, Any], dict[str, int]]: ...

    async def cached_result(self, workflow: Any, overrides: dict[str, Any],
                            validate: bool) -> Result | None: ...

    async def follow(self, prompt_id: str) -> AsyncJob: ...

    async def object_info(self, refresh: bool = False) -> dict[str, Any]: ...

    async def upload_image(self, image: Any, *, name: str | None, subfolder: str,
                           overwrite: bool, kind: str) -> str: ...

    async def upload_mask(self, mask: Any, original: str, *, name: str | None,
                          subfolder: str, kind: str) -> str: ...

    def settled(self, prompt_id: str, result: Result) -> bool: ...

    async def settle(self, prompt_id: str, result: Result) -> None: ...

    async def flush(self, timeout: float = 10.0) -> None: ...

    async def wind_down(self) -> None: ...
