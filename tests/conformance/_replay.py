"""Tools for replaying recorded ComfyUI traffic against the emulator: where the recordings are,
how to send a recorded request, how to listen on a websocket, and how to compare structures.

What the comparisons deliberately ignore is declared in ``deviations.py``, never here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import websockets

from tests.fixture_paths import COMFYUI, require

FIXTURES = COMFYUI


def fixture_files() -> list[str]:
    """Every recorded file, relative to FIXTURES (README.md excluded: it is prose)."""
    return sorted(
        p.relative_to(FIXTURES).as_posix()
        for p in require(FIXTURES).rglob("*")
        if p.is_file() and p.name != "README.md"
    )


def load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


def send(http: httpx.Client, request: dict[str, Any], **overrides: Any) -> httpx.Response:
    """Send a recorded request (``method``, ``path``, ``body`` | ``raw_body`` | multipart,
    ``headers``) to the emulator."""
    method = request["method"]
    path = overrides.pop("path", request["path"])
    headers = dict(request.get("headers") or {})
    headers.update(overrides.pop("headers", {}))
    kwargs: dict[str, Any] = {}
    if "body" in overrides:
        kwargs["json"] = overrides.pop("body")
    elif "body" in request:
        kwargs["json"] = request["body"]
    elif "raw_body" in request:
        kwargs["content"] = request["raw_body"].encode("utf-8")
    kwargs.update(overrides)
    return http.request(method, path, headers=headers, **kwargs)


def content_type(response: httpx.Response) -> str | None:
    return response.headers.get("content-type")


def response_body(response: httpx.Response) -> Any:
    if "json" in (content_type(response) or ""):
        return response.json()
    return response.text


def shape(value: Any) -> Any:
    """The structure of a JSON value: dict keys (recursively), list element shapes, type names."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def without(value: Any, keys: set[str]) -> Any:
    """``value`` with every dict entry named in ``keys`` removed, at any depth."""
    if isinstance(value, dict):
        return {k: without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [without(v, keys) for v in value]
    return value


def replace_ids(value: Any, mapping: dict[str, str]) -> Any:
    """Replace recorded ids (prompt ids, client ids) with placeholders, at any depth."""
    if isinstance(value, dict):
        return {replace_ids(k, mapping): replace_ids(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_ids(v, mapping) for v in value]
    if isinstance(value, str):
        return mapping.get(value, value)
    return value


COUNTER_NAME = re.compile(r"^(?P<prefix>.*)_(?P<counter>\d{5})_(?P<ext>\.\w+)$")
TEMP_NAME = re.compile(r"^ComfyUI_temp_[a-z]{5}_(?P<counter>\d{5})_(?P<ext>\.\w+)$")


def file_pattern(filename: str) -> str:
    """A saved file's name with the parts that depend on earlier runs replaced: the temp
    prefix's 5 random letters and the counter."""
    temp = TEMP_NAME.match(filename)
    if temp:
        return f"ComfyUI_temp_?????_NNNNN_{temp['ext']}"
    saved = COUNTER_NAME.match(filename)
    if saved:
        return f"{saved['prefix']}_NNNNN_{saved['ext']}"
    return filename


class SocketRecorder:
    """A websocket client on its own thread that records every frame it receives."""

    def __init__(self, url: str, client_id: str | None = None,
                 feature_flags: dict[str, Any] | None = None) -> None:
        self.url = url + (f"?clientId={client_id}" if client_id else "")
        self.feature_flags = feature_flags
        self.frames: list[tuple[str, Any]] = []  # ("text", parsed json) | ("binary", bytes)
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.closed = False  # the server closed the connection
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SocketRecorder:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("websocket did not connect")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            ws = await websockets.connect(self.url, max_size=None)
        except BaseException as exc:  # surfaced in __enter__
            self._error = exc
            self._ready.set()
            return
        async with ws:
            first = await ws.recv()
            self._record(first)
            if self.feature_flags is not None:
                await ws.send(json.dumps({"type": "feature_flags", "data": self.feature_flags}))
                self._record(await ws.recv())
            self._ready.set()
            stopper = asyncio.ensure_future(self._stop.wait())
            while True:
                receiver = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait({receiver, stopper},
                                             return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    receiver.cancel()
                    with contextlib.suppress(BaseException):
                        await receiver
                    return
                try:
                    self._record(receiver.result())
                except websockets.ConnectionClosed:
                    self.closed = True
                    return

    def _record(self, message: str | bytes) -> None:
        with self._changed:
            if isinstance(message, bytes):
                self.frames.append(("binary", message))
            else:
                self.frames.append(("text", json.loads(message)))
            self._changed.notify_all()

    def messages(self) -> list[dict[str, Any]]:
        with self._changed:
            return [payload for kind, payload in self.frames if kind == "text"]

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> dict[str, Any]:
        """Wait until a JSON message satisfying ``predicate`` has arrived; return it."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: any(predicate(m) for k, m in self.frames if k == "text"), timeout
            )
            if not ok:
                seen = [m.get("type") for k, m in self.frames if k == "text"]
                raise TimeoutError(f"no matching websocket message within {timeout} s; saw {seen}")
            return next(m for k, m in self.frames if k == "text" and predicate(m))

    def wait_quiet(self, seconds: float = 0.2) -> None:
        """Wait until no frame has arrived for ``seconds``."""
        while True:
            with self._changed:
                count = len(self.frames)
                self._changed.wait(seconds)
                if len(self.frames) == count:
                    return


def wait_history(http: httpx.Client, prompt_id: str, timeout: float = 20) -> dict[str, Any]:
    """Poll ``/history/{prompt_id}`` until the prompt has an entry; return that entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry: dict[str, Any] = http.get(f"/history/{prompt_id}").json()
        if entry:
            found: dict[str, Any] = entry[prompt_id]
            return found
        time.sleep(0.02)
    raise TimeoutError(f"{prompt_id} never reached history")


def finished(prompt_id: str) -> Callable[[dict[str, Any]], bool]:
    """Predicate: the final ``executing {node: null}`` of ``prompt_id``."""
    return lambda m: (m.get("type") == "executing" and m["data"].get("node") is None
                      and m["data"].get("prompt_id") == prompt_id)


def message_types(frames: list[tuple[str, Any]]) -> list[str]:
    """The sequence of frame kinds: JSON message types, and ``binary:<event type>``."""
    out = []
    for kind, payload in frames:
        if kind == "text":
            out.append(payload["type"])
        else:
            out.append(f"binary:{int.from_bytes(payload[:4], 'big')}")
    return out


def recorded_types(frames: list[dict[str, Any]]) -> list[str]:
    out = []
    for frame in frames:
        if frame["kind"] == "text":
            out.append(frame["msg"]["type"])
        else:
            out.append(f"binary:{frame['event_type']}")
    return out


@contextlib.contextmanager
def http_client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        yield client
