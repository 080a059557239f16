"""Where a client connects (comfy_nb._config and the client's use of it): the resolution order,
the words ``cloud`` and ``emulator``, ``dialect="cloud"`` that never lands on a local server, and
the discovery of a local ComfyUI, tested against servers these tests start
(``COMFY_NB_LOCAL_URL`` points the probe at them; tests/conftest.py turns it off elsewhere)."""

from __future__ import annotations

import http.server
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import comfy_nb
from comfy_nb import InvalidURL, _config
from comfy_nb.emulator import serve

from .http_server import http_server

ENV_KEY = "env-key-0123456789"
ARG_KEY = "arg-key-0123456789"


class _Anything(http.server.BaseHTTPRequestHandler):
    """Answers every request with 200 and a small JSON object, and remembers it: a server
    listening where it must not be asked."""

    seen: ClassVar[list[str]] = []
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.seen.append(f"{self.command} {self.path}")
        body = b'{"system": {"comfyui_version": "not-to-be-asked"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bystander(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A server answering anything at the address probed for a local ComfyUI
    (``COMFY_NB_LOCAL_URL``); yields the requests it received."""
    _Anything.seen = []
    with http_server(_Anything) as url:
        monkeypatch.setenv("COMFY_NB_LOCAL_URL", url)
        yield _Anything.seen


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("COMFY_URL", "COMFY_CLOUD_API_KEY", "COMFY_NB_CLOUD_URL", "COMFY_BASE_URL",
                 "COMFY_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# -- the resolution order -------------------------------------------------------------------------


def test_an_explicit_url_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("COMFY_URL", "http://elsewhere:1")
    clean_env.setenv("COMFY_CLOUD_API_KEY", ENV_KEY)
    target = _config.resolve("127.0.0.1:9999/")
    assert (target.url, target.source) == ("http://127.0.0.1:9999", "argument")
    # the environment's key is for Comfy Cloud, not for this server
    assert target.api_key is None and target.key_withheld
    given = _config.resolve("127.0.0.1:9999", api_key=ARG_KEY)
    assert given.api_key == ARG_KEY and not given.key_withheld
    cloud = _config.resolve("cloud")
    assert (cloud.url, cloud.api_key) == (_config.CLOUD_URL, ENV_KEY)


def test_comfy_base_url_names_a_v2_server_and_comfy_api_key_goes_only_there(
        clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("COMFY_BASE_URL", "http://v2-box:8189")
    clean_env.setenv("COMFY_API_KEY", ENV_KEY)
    target = _config.resolve()
    assert (target.url, target.api_key, target.source) == (
        "http://v2-box:8189", ENV_KEY, "environment")
    same_origin = _config.resolve("http://v2-box:8189/api/v2")
    assert same_origin.api_key == ENV_KEY
    elsewhere = _config.resolve("http://other-box:8189")
    assert elsewhere.api_key is None and elsewhere.key_withheld
    assert _config.resolve("cloud").api_key is None  # not Comfy Cloud's key now
    clean_env.delenv("COMFY_BASE_URL")  # unset: the SDK's default, Comfy Cloud
    assert _config.resolve("cloud").api_key == ENV_KEY
    assert _config.resolve("http://v2-box:8189").api_key is None
    alone = _config.resolve()  # the key alone means Comfy Cloud, as for the SDK
    assert (alone.url, alone.api_key) == (_config.CLOUD_URL, ENV_KEY)
    clean_env.setenv("COMFY_URL", "http://gpu-box:8188")  # COMFY_URL comes first
    clean_env.setenv("COMFY_BASE_URL", "http://v2-box:8189")
    assert _config.resolve().url == "http://gpu-box:8188"


def test_comfy_url_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("COMFY_URL", "http://gpu-box:8188")
    target = _config.resolve()
    assert (target.url, target.api_key, target.source) == (
        "http://gpu-box:8188", None, "environment")


def test_a_cloud_key_means_comfy_cloud(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("COMFY_CLOUD_API_KEY", ENV_KEY)
    target = _config.resolve()
    assert (target.url, target.api_key, target.source) == (
        _config.CLOUD_URL, ENV_KEY, "environment")
    assert ENV_KEY not in repr(target) and ENV_KEY not in repr(target.api_key)
    explicit = _config.resolve(api_key=ARG_KEY)
    assert (explicit.url, explicit.api_key) == (_config.CLOUD_URL, ARG_KEY)


def test_comfy_nb_cloud_url_moves_comfy_cloud(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("COMFY_NB_CLOUD_URL", "https://staging.example.org/")
    clean_env.setenv("COMFY_CLOUD_API_KEY", ENV_KEY)
    assert _config.resolve().url == "https://staging.example.org"
    assert _config.resolve("cloud").api_key == ENV_KEY
    # the real Comfy Cloud is now just another server, for the environment's key
    assert _config.resolve(_config.CLOUD_URL).api_key is None
    clean_env.setenv("COMFY_NB_CLOUD_URL", "ftp://nope")
    with pytest.raises(InvalidURL, match="COMFY_NB_CLOUD_URL: "):
        _config.resolve("cloud")


def test_the_cloud_origin_is_scheme_host_and_port(clean_env: pytest.MonkeyPatch) -> None:
    assert _config.is_cloud("https://cloud.comfy.org")
    assert _config.is_cloud("https://CLOUD.comfy.org:443/api")
    for other in ("http://cloud.comfy.org", "https://cloud.comfy.org:8443",
                  "https://cloud.comfy.org.evil.example", "https://evil.example/cloud.comfy.org"):
        assert not _config.is_cloud(other), other


def test_the_word_emulator_means_the_embedded_emulator(clean_env: pytest.MonkeyPatch,
                                                       bystander: list[str]) -> None:
    assert _config.normalize_url(" Emulator ") == _config.EMULATOR
    assert _config.resolve("emulator") == _config.Target(None, None, "argument")
    clean_env.setenv("COMFY_URL", "emulator")
    clean_env.setenv("COMFY_CLOUD_API_KEY", ENV_KEY)
    assert _config.resolve() == _config.Target(None, None, "environment")
    assert _config.normalize_url("http://emulator:8188") == "http://emulator:8188"  # a host
    assert bystander == []


def test_nothing_configured_probes_the_local_address(clean_env: pytest.MonkeyPatch,
                                                     bystander: list[str]) -> None:
    local = _config.local_url()
    assert local is not None
    assert _config.resolve() == _config.Target(local, None, "local server")
    clean_env.setenv("COMFY_NB_LOCAL_URL", "off")
    assert _config.resolve() == _config.Target(None, None, "emulator")
    clean_env.delenv("COMFY_NB_LOCAL_URL")
    assert _config.local_url() == _config.LOCAL_URL == "http://127.0.0.1:8188"
    assert bystander == []  # the probe only opens a TCP connection


def test_dialect_cloud_never_resolves_to_a_local_server(clean_env: pytest.MonkeyPatch,
                                                        bystander: list[str]) -> None:
    assert _config.resolve(dialect="cloud") == _config.Target(None, None, "emulator")
    clean_env.setenv("COMFY_CLOUD_API_KEY", ENV_KEY)
    target = _config.resolve(dialect="cloud")
    assert (target.url, target.api_key) == (_config.cloud_url(), ENV_KEY)


# -- connecting -----------------------------------------------------------------------------------


def test_connect_emulator_starts_it_whatever_runs(clean_env: pytest.MonkeyPatch,
                                                  bystander: list[str]) -> None:
    for dialect in (None, "cloud"):
        with comfy_nb.connect("emulator", dialect=dialect) as client:
            assert client.emulator is not None
            assert client.dialect == (dialect or "local")
            assert "stand-in pixels" in client.describe()
    clean_env.setenv("COMFY_URL", "emulator")
    with comfy_nb.connect() as client:
        assert client.emulator is not None
    assert bystander == []


def test_a_local_comfyui_is_found_at_the_probed_address(clean_env: pytest.MonkeyPatch) -> None:
    with serve(step_delay=0.0) as local:
        clean_env.setenv("COMFY_NB_LOCAL_URL", local.url)
        with comfy_nb.connect() as client:
            assert (client.url, client.dialect) == (local.url, "local")
            assert client.emulator is None


def test_connect_dialect_cloud_without_a_key_is_the_cloud_emulator(
        clean_env: pytest.MonkeyPatch, bystander: list[str],
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="comfy_nb"), \
            comfy_nb.connect(dialect="cloud") as client:
        assert client.dialect == "cloud" and client.emulator is not None
        assert client.run("txt2img", steps=1, timeout=30).images
    notice = " ".join(r.getMessage() for r in caplog.records)
    assert "no COMFY_CLOUD_API_KEY" in notice and "emulator of Comfy Cloud" in notice
    assert bystander == []


def test_connect_dialect_cloud_with_a_key_is_comfy_cloud(clean_env: pytest.MonkeyPatch,
                                                         bystander: list[str]) -> None:
    with serve(dialect="cloud", step_delay=0.0) as cloud:
        assert cloud.api_key
        clean_env.setenv("COMFY_NB_CLOUD_URL", cloud.url)  # Comfy Cloud, for this test
        clean_env.setenv("COMFY_CLOUD_API_KEY", cloud.api_key)
        with comfy_nb.connect(dialect="cloud") as client:
            assert (client.url, client.dialect) == (cloud.url, "cloud")
            assert client.emulator is None
            assert client.user()  # the key was accepted
    assert bystander == []


def test_a_kernel_started_by_a_test_probes_nothing(tmp_path: Path) -> None:
    """Subprocesses (and the kernels of notebook tests) inherit tests/conftest.py's settings."""
    code = ("from comfy_nb import _config; "
            "print(_config.local_url(), _config.cloud_url(), _config.resolve().source)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path, check=True).stdout.split()
    assert shown == ["None", "https://comfy-cloud.invalid", "emulator"]

