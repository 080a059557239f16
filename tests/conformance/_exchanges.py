"""Comparing one emulator response with one recorded HTTP exchange (``request`` + ``response``):
status, the recorded headers (Content-Type, Content-Length, Content-Disposition,
Transfer-Encoding) and the body. Shared by ``test_http`` and ``test_errors``.

Nothing here relaxes a comparison; callers pass ``length=False`` or compare bodies themselves
where a deviation from ``deviations.py`` applies.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ._replay import send

# The headers the recordings kept (README: "Content-Type, Content-Length, Content-Disposition,
# Location only", plus Transfer-Encoding where the server streamed).
COMPARED_HEADERS = ("Content-Type", "Content-Disposition", "Location")


def json_length(body: Any) -> int:
    """Bytes of ``body`` serialised the way aiohttp's ``json_response`` (and ComfyUI) does."""
    return len(json.dumps(body).encode("utf-8"))


def assert_headers(response: httpx.Response, recorded: dict[str, Any], *,
                   length: bool = True, where: str = "") -> None:
    """The recorded headers: Content-Type / Content-Disposition / Location present exactly when
    recorded and equal; Content-Length equal (when ``length``); chunked when recorded chunked."""
    headers = recorded.get("headers") or {}
    for name in COMPARED_HEADERS:
        assert response.headers.get(name) == headers.get(name), (
            f"{where}: header {name}: {response.headers.get(name)!r} != {headers.get(name)!r}")
    if headers.get("Transfer-Encoding") == "chunked":
        assert response.headers.get("Transfer-Encoding") == "chunked", where
        assert "Content-Length" not in response.headers, where
    if length and "Content-Length" in headers:
        assert response.headers.get("Content-Length") == headers["Content-Length"], (
            f"{where}: Content-Length {response.headers.get('Content-Length')!r} != "
            f"{headers['Content-Length']!r}")


def body_of(response: httpx.Response) -> Any:
    """The parsed body when the response says JSON, else the text."""
    if "json" in (response.headers.get("Content-Type") or ""):
        return response.json()
    return response.text


def assert_body(response: httpx.Response, recorded: dict[str, Any], where: str = "") -> None:
    if "body" in recorded:
        assert body_of(response) == recorded["body"], where
        # the same bytes, not only the same parsed value
        assert len(response.content) == json_length(recorded["body"]), where
    elif "body_text" in recorded:
        assert response.text == recorded["body_text"], where
    elif "body_len" in recorded:
        assert len(response.content) == recorded["body_len"], where


def assert_exchange(http: httpx.Client, exchange: dict[str, Any], **overrides: Any) -> None:
    """Replay ``exchange`` and compare status, headers and body exactly."""
    response = send(http, exchange["request"], **overrides)
    recorded = exchange["response"]
    where = f"{exchange['request']['method']} {overrides.get('path', exchange['request']['path'])}"
    assert response.status_code == recorded["status"], (
        f"{where}: status {response.status_code} != {recorded['status']}")
    assert_headers(response, recorded, where=where)
    assert_body(response, recorded, where)


def assert_keeps_serving(http: httpx.Client) -> None:
    """After whatever came before, the server still answers ``GET /queue``."""
    response = http.get("/queue")
    assert response.status_code == 200
    assert set(response.json()) == {"queue_running", "queue_pending"}
