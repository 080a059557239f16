"""The emulator on an IPv6 address: every URL it builds (its own, the Cloud storage origin's,
the ``/api/view`` redirect) puts the address in brackets, as URLs must; a host given with
brackets is bound without them. Checked on the URL builder itself and on a real ``::1`` socket.
"""

from __future__ import annotations

import socket
import urllib.parse

import httpx
import pytest

import comfy_nb
from comfy_nb.emulator import serve
from comfy_nb.emulator._server import EmulatorOptions
from comfy_nb.workflows import bundled


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", "127.0.0.1:8188"), ("localhost", "localhost:8188"),
    ("::1", "[::1]:8188"), ("[::1]", "[::1]:8188"), (" ::1 ", "[::1]:8188"),
    ("fe80::1%eth0", "[fe80::1%25eth0]:8188"), ("::", "[::]:8188"),
])
def test_urls_put_ipv6_addresses_in_brackets(host: str, expected: str) -> None:
    from comfy_nb.emulator._server import http_url, netloc

    assert netloc(host, 8188) == expected
    url = http_url(host, 8188)
    assert url == f"http://{expected}"
    parsed = urllib.parse.urlsplit(url)
    assert parsed.port == 8188 and parsed.hostname == host.strip(" []").lower().replace(
        "%eth0", "%25eth0")
    assert httpx.URL(url).port == 8188  # what the client and aiohttp's redirects parse


def test_a_bracketed_host_is_bound_without_brackets() -> None:
    assert EmulatorOptions(host="[::1]").host == "::1"
    assert EmulatorOptions(host="127.0.0.1").host == "127.0.0.1"


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_the_cloud_emulator_serves_and_redirects_on_ipv6_loopback(host: str) -> None:
    if not ipv6_loopback():
        pytest.fail("this machine has no IPv6 loopback (::1 cannot be bound), so the emulator "
                    "cannot be checked on a real IPv6 socket here; run this test where ::1 "
                    "exists")
    with serve(dialect="cloud", host=host, step_delay=0) as server:
        port = urllib.parse.urlsplit(server.url).port
        assert server.url == f"http://[::1]:{port}"
        assert server.storage_url.startswith("http://[::1]:")
        assert server.ws_url == f"ws://[::1]:{port}/ws"
        with comfy_nb.connect(server.url, api_key=server.api_key) as client:
            result = client.run(bundled("txt2img"), overrides={"steps": 1}, cache=False)
            [image] = result.images
            name = image.filename
            assert image.read().startswith(b"\x89PNG")  # fetched through the redirect
        view = httpx.get(f"{server.url}/api/view", params={"filename": name, "type": "output"},
                         headers={"X-API-Key": server.api_key or ""})
        assert view.status_code == 302
        location = view.headers["location"]
        assert location.startswith(f"{server.storage_url}/")
        assert httpx.get(location).status_code == 200


def test_the_local_emulator_serves_on_ipv6_loopback() -> None:
    if not ipv6_loopback():
        pytest.fail("this machine has no IPv6 loopback (::1 cannot be bound), so the emulator "
                    "cannot be checked on a real IPv6 socket here; run this test where ::1 "
                    "exists")
    with serve(host="::1", step_delay=0) as server:
        assert server.url.startswith("http://[::1]:")
        with comfy_nb.connect(server.url) as client:
            result = client.run(bundled("txt2img"), overrides={"steps": 1}, cache=False)
            assert result.images[0].read().startswith(b"\x89PNG")
