"""Errors of configuring and connecting a client: malformed URLs and arguments fail early with one
short :class:`~comfy_nb.InvalidURL` (or ``TypeError``) that never shows a key, even in a
``%xmode Verbose`` traceback; a server that is not ComfyUI, or never answers, is named in one
line."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.ultratb import VerboseTB

import comfy_nb
from comfy_nb import AsyncClient, ComfyError, InvalidURL, NotFoundError, RequestError, _config
from comfy_nb.client import TransportError
from comfy_nb.emulator import serve

from ..both_clients import make_client
from ..http_server import http_server

ENV_KEY = "comfyui-ENV-config-k3y-9d8c7b6a5f4e"
ARG_KEY = "comfyui-ARG-config-k3y-1a2b3c4d5e6f"

MALFORMED = {
    "ftp://x": "not a server URL",
    "http://user:pw@host:1": "credentials",
    "http://127.0.0.1:99999": "port",
    "http://127.0.0.1:abc": "port",
    "http://[::1": "IPv6",
}


def client_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("comfy-nb")}


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("COMFY_URL", raising=False)
    monkeypatch.setenv("COMFY_CLOUD_API_KEY", ENV_KEY)
    return ENV_KEY


# -- malformed URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_url_is_one_short_error(url: str, env_key: str) -> None:
    with pytest.raises(InvalidURL, match=MALFORMED[url]) as caught:
        _config.resolve(url)
    error = caught.value
    assert isinstance(error, ComfyError) and isinstance(error, ValueError)
    assert "\n" not in str(error) and "pw" not in str(error)
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize("url", MALFORMED)
def test_connect_refuses_a_malformed_url_before_starting_anything(url: str, env_key: str) -> None:
    before = client_threads()
    with pytest.raises(InvalidURL):
        comfy_nb.connect(url)
    with pytest.raises(InvalidURL):
        AsyncClient(url)
    assert client_threads() == before


def test_ports_must_be_in_range() -> None:
    for port in (0, 65536, 99999):
        with pytest.raises(InvalidURL, match="1 to 65535"):
            _config.normalize_url(f"http://127.0.0.1:{port}")
    assert _config.normalize_url("127.0.0.1:1") == "http://127.0.0.1:1"
    assert _config.normalize_url("http://[::1]:65535/") == "http://[::1]:65535"


def test_messages_never_show_credentials_or_queries() -> None:
    with pytest.raises(InvalidURL) as caught:
        _config.normalize_url("ftp://host/path?token=s3cret#frag")
    assert "s3cret" not in str(caught.value) and "'ftp://host/path'" in str(caught.value)
    with pytest.raises(InvalidURL) as caught:
        _config.normalize_url("http://user:pa55@[::1:8188")
    assert "pa55" not in str(caught.value)


def test_a_malformed_comfy_url_names_the_variable(env_key: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_URL", "http://gpu-box:99999")
    with pytest.raises(InvalidURL, match=r"COMFY_URL: .*port"):
        _config.resolve()
    assert _config.resolve(api_key=ARG_KEY).url == _config.cloud_url()  # COMFY_URL is not used


def test_arguments_of_the_wrong_type_are_type_errors(env_key: str) -> None:
    before = client_threads()
    with pytest.raises(TypeError, match=r"must be a string.*got int"):
        comfy_nb.connect(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="api_key must be a string"):
        AsyncClient("http://127.0.0.1:1", api_key=12345)  # type: ignore[arg-type]
    assert client_threads() == before


# -- what a notebook shows ------------------------------------------------------------------------


@pytest.fixture
def verbose_shell() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    mode = shell.InteractiveTB.mode
    shell.run_line_magic("xmode", "Verbose")
    shell.run_cell("import comfy_nb")
    yield shell
    shell.run_line_magic("xmode", mode)
    ComfyError.short_tracebacks = True


@pytest.mark.parametrize("url", MALFORMED)
def test_verbose_tracebacks_never_show_the_key(url: str, env_key: str,
                                               verbose_shell: InteractiveShell,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    verbose_shell.run_cell(f"comfy_nb.connect({url!r})")
    short = capsys.readouterr().out
    assert short.startswith("InvalidURL: ") and len(short.strip().splitlines()) == 2
    assert env_key not in short and "pw" not in short

    ComfyError.short_tracebacks = False  # the whole traceback, with every frame's locals
    for cell in (f"comfy_nb.connect({url!r})", f"comfy_nb.AsyncClient({url!r})",
                 f"comfy_nb._config.resolve({url!r})"):
        verbose_shell.run_cell(cell)
        full = capsys.readouterr().out
        assert "InvalidURL" in full and "url" in full and env_key not in full


def _colourless_verbose_tb() -> VerboseTB:
    """IPython's Verbose traceback formatter without colours (IPython 9 names it a theme)."""
    try:
        return VerboseTB(theme_name="nocolor")  # type: ignore[call-arg, unused-ignore]
    except TypeError:  # IPython 8
        return VerboseTB(color_scheme="NoColor")


@pytest.mark.parametrize("url", MALFORMED)
def test_verbose_tb_of_the_error_shows_locals_but_no_key(url: str, env_key: str) -> None:
    for attempt in (lambda: _config.resolve(url), lambda: AsyncClient(url),
                    lambda: comfy_nb.connect(url)):
        with pytest.raises(InvalidURL) as caught:
            attempt()
        below_this_test = caught.tb.tb_next
        text = _colourless_verbose_tb().text(caught.type, caught.value, below_this_test)
        assert "url = " in text  # frame locals are shown...
        assert env_key not in text  # ...but none of them holds the key


def test_an_explicit_key_stays_out_of_the_short_form(
        verbose_shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    verbose_shell.run_cell(f"comfy_nb.connect('http://127.0.0.1:99999', api_key={ARG_KEY!r})")
    assert ARG_KEY not in capsys.readouterr().out


# -- servers that are not ComfyUI -----------------------------------------------------------------


class _Page(http.server.BaseHTTPRequestHandler):
    """Answers every GET with an HTML page: a web app, not ComfyUI."""

    def do_GET(self) -> None:
        page = b"<!DOCTYPE html>\n<html><head><title>My App</title></head><body>hi</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Files(http.server.SimpleHTTPRequestHandler):
    """``python -m http.server``: 404 pages in HTML for every API route."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_file_server_is_not_comfyui(mode: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with http_server(_Files) as url, pytest.raises(NotFoundError) as caught:
        await make_client(mode, url)
    message = str(caught.value)
    assert message == (f"{url} answered, but it is not a ComfyUI server "
                       "(GET /api/system_stats gave 404): check the URL and port")


async def test_a_web_app_answering_html_is_not_comfyui() -> None:
    not_comfyui = r"not a ComfyUI server.*gave 200"
    with http_server(_Page) as url, pytest.raises(RequestError, match=not_comfyui) as caught:
        await make_client("async", url)
    assert "<" not in str(caught.value) and "\n" not in str(caught.value)


# -- servers that never answer --------------------------------------------------------------------


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A socket on 127.0.0.1 that accepts connections (in the kernel's backlog) and never
    answers; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_server_that_never_answers_fails_within_connect_timeout(mode: str) -> None:
    with silent_server() as url, pytest.raises(TransportError) as caught:
        await make_client(mode, url, connect_timeout=0.2)
    assert str(caught.value).startswith(f"{url} did not answer within 0.2 s")


async def test_requests_after_connecting_keep_their_own_timeout() -> None:
    with serve(step_delay=0.01) as server:
        server.faults.update(latency=0.3)  # longer than connect_timeout, well within timeout
        client = await make_client("async", server.url, dialect="local", websocket=False,
                                   connect_timeout=0.05)
        try:
            assert "system" in await client.system_stats()
        finally:
            await client.aclose()


def test_connect_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="connect_timeout"):
        AsyncClient("http://127.0.0.1:1", connect_timeout=0)


# -- empty URLs, queries and fragments ------------------------------------------------------------


@pytest.mark.parametrize("url", ["", "   "])
def test_an_empty_url_is_refused_not_taken_as_no_url(url: str, env_key: str) -> None:
    before = client_threads()
    for attempt in (lambda: _config.resolve(url), lambda: AsyncClient(url),
                    lambda: comfy_nb.connect(url)):
        with pytest.raises(InvalidURL, match="the server URL is empty") as caught:
            attempt()
        assert "\n" not in str(caught.value)
    assert client_threads() == before  # nothing was found, started or connected to


@pytest.mark.parametrize("url", ["http://127.0.0.1:8188?token=s3cret",
                                 "http://127.0.0.1:8188/#s3cret", "127.0.0.1:8188/?",
                                 "http://127.0.0.1:8188/base/?s3cret#x"])
def test_a_query_or_fragment_is_refused_not_dropped(url: str, env_key: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    base = "http://127.0.0.1:8188/base" if "/base" in url else "http://127.0.0.1:8188"
    before = client_threads()
    for attempt in (lambda: _config.normalize_url(url), lambda: comfy_nb.connect(url),
                    lambda: AsyncClient(url)):
        with pytest.raises(InvalidURL, match=r"cannot carry a \?query or #fragment") as caught:
            attempt()
        message = str(caught.value)
        assert f"use {base!r}" in message and "s3cret" not in message and "\n" not in message
    assert client_threads() == before
    monkeypatch.setenv("COMFY_URL", url)
    with pytest.raises(InvalidURL, match=r"^COMFY_URL: a server URL cannot carry"):
        _config.resolve()
