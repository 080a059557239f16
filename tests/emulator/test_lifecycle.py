"""Starting and stopping the emulator: a free port, a clean stop (port released, threads gone,
temporary folders removed), both dialects, and the options' validation."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from comfy_nb.emulator import serve


def _port_is_free(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


@pytest.mark.parametrize("dialect", ["local", "cloud"])
def test_serve_starts_on_a_free_port_and_stops_cleanly(dialect: str) -> None:
    threads_before = set(threading.enumerate())
    with serve(dialect=dialect) as server:
        assert server.url.startswith("http://127.0.0.1:")
        headers = {"X-API-Key": server.api_key} if dialect == "cloud" else {}
        path = "/api/system_stats"
        stats = httpx.get(server.url + path, headers=headers).json()
        assert stats["emulator"]["stand_in_pixels"] is True
        assert stats["emulator"]["dialect"] == dialect
        data_dir = server.state.data_dir
        assert data_dir.is_dir()
        urls = [server.url] + ([server.storage_url] if dialect == "cloud" else [])
    for url in urls:
        assert _port_is_free(url)
    assert not data_dir.exists()
    leftover = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert leftover == []


def test_two_emulators_run_side_by_side() -> None:
    with serve() as first, serve() as second:
        assert first.url != second.url
        assert httpx.get(first.url + "/queue").status_code == 200
        assert httpx.get(second.url + "/queue").status_code == 200


def test_cloud_has_a_key_and_a_separate_storage_origin() -> None:
    with serve(dialect="cloud") as server:
        assert server.api_key and server.api_key.startswith("comfyui-")
        assert server.storage_url and server.storage_url != server.url
        assert server.api_key not in repr(server)


def test_local_has_no_key() -> None:
    with serve() as server:
        assert server.api_key is None
        assert server.storage_url == ""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dialect": "remote"}, "dialect must be 'local', 'cloud' or 'v2'"),
        ({"dialect": "cloud", "tier": "gold"}, "tier must be one of"),
        ({"step_delay": -1}, "must be >= 0"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(options: dict[str, object],
                                                       message: str) -> None:
    with pytest.raises(ValueError, match=message), serve(**options):  # type: ignore[arg-type]
        pass


def test_an_explicit_data_dir_is_kept(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "data"
    with serve(data_dir=folder) as server:
        assert server.input_dir == folder / "input"
    assert (folder / "input" / "example.png").is_file()
