"""Pools in a notebook, against emulators over real sockets: ``%comfy connect URL URL`` (the
banner naming each member, ``%comfy status`` / ``queue`` saying which member has which job, a
key typed in reaching the Comfy Cloud member alone), and the sweep panels and grids of a sweep
on a pool, which show each member's lane and which member ran each item."""

from __future__ import annotations

import getpass
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import comfy_nb
from comfy_nb.emulator import RunningEmulator
from comfy_nb.notebook.sweep_grid import SweepGrid
from comfy_nb.notebook.sweep_view import render_sweep

from ..factories import Emulators
from ..shells import comfy_shell, magics, run
from ..tiny_workflows import invert
from ..wiretap import Wiretap
from .comms import FakeHandle

WAIT = 60.0  # a safety net against hangs, never asserted on
KEY = "sk-typed-in-for-the-cloud-member"



@pytest.fixture
def servers(emulators: Emulators) -> list[RunningEmulator]:
    """Two local emulators whose jobs take a moment (so that a sweep spreads over both)."""
    return [emulators(node_delay=0.2), emulators(node_delay=0.2)]


@pytest.fixture
def shell(servers: list[RunningEmulator], tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    with comfy_shell(monkeypatch, tmp_path, COMFY_URL=servers[0].url, COMFY_NB_PROGRESS="text",
                     COMFY_NB_CACHE="off") as ip:  # (every job runs)
        yield ip


def sweep_cell(values: str) -> str:
    return f"%%comfy_run swept --sweep EmptyImage.color={values}\n{json.dumps(invert())}"


# -- %comfy connect ------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["{a} {b}", "{a},{b}", "{a}, {b}"])
def test_connect_several_urls_makes_a_pool_and_names_its_members(
        spelling: str, servers: list[RunningEmulator], shell: InteractiveShell,
        capsys: pytest.CaptureFixture[str]) -> None:
    first, second = servers
    run(shell, "%comfy connect " + spelling.format(a=first.url, b=second.url))
    client = magics(shell).client
    assert isinstance(client, comfy_nb.Pool)
    assert [member.url for member in client.members] == [first.url, second.url]
    out = capsys.readouterr().out
    assert "connected to a pool of 2 servers (2 jobs at once)" in out
    for server in servers:
        assert re.search(rf"  {re.escape(server.url)} \(local, version [^)]+\) · capacity 1",
                         out), out
    assert out.count("stand-in pixels") == 1  # the members' warnings, each once


def test_the_banner_says_which_member_does_not_answer(
        servers: list[RunningEmulator], shell: InteractiveShell,
        capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
    run(shell, f"%comfy connect {servers[0].url} {nobody}")
    out = capsys.readouterr().out
    assert "connected to a pool of 2 servers (2 jobs at once)" in out
    assert re.search(rf"  {re.escape(servers[0].url)} \(local, version [^)]+\) · capacity 1",
                     out), out
    assert f"  {nobody} · capacity 1 · not answering: it joins the pool when it does" in out


def test_a_cells_url_may_name_a_pool(servers: list[RunningEmulator],
                                     shell: InteractiveShell) -> None:
    first, second = servers
    urls = f"{first.url},{second.url}"
    run(shell, f"%%comfy_run result --url {urls}\n{json.dumps(invert(7))}")
    result = shell.user_ns["result"]
    assert isinstance(result, comfy_nb.Result) and result.server in (first.url, second.url)
    pool = magics(shell).session_client(urls)
    assert isinstance(pool, comfy_nb.Pool) and magics(shell).session_client(urls) is pool
    with pytest.raises(UsageError, match="named twice"):
        run(shell, f"%%comfy_run --url {first.url},{first.url}\n{json.dumps(invert(8))}")


def test_connect_one_url_is_a_client_as_before(servers: list[RunningEmulator],
                                               shell: InteractiveShell,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, f"%comfy connect {servers[1].url}")
    client = magics(shell).client
    assert type(client) is comfy_nb.Client and client.url == servers[1].url
    out = capsys.readouterr().out
    assert f"comfy_nb: connected to {servers[1].url} (local, version" in out
    assert "pool" not in out


@pytest.mark.parametrize("line, message", [
    ("%comfy connect {a} {a}", "is named twice"),
    ("%comfy connect {a},,{b}", "none of them empty"),
])
def test_a_bad_list_of_servers_is_a_usage_error(
        line: str, message: str, servers: list[RunningEmulator],
        shell: InteractiveShell) -> None:
    outcome = shell.run_cell(line.format(a=servers[0].url, b=servers[1].url))
    error = outcome.error_in_exec
    assert isinstance(error, UsageError) and message in str(error)
    assert magics(shell).client is None  # nothing connected


def test_a_key_typed_in_goes_to_the_cloud_member_alone(
        emulators: Emulators, servers: list[RunningEmulator], shell: InteractiveShell,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = emulators("cloud", api_key=KEY, node_delay=0.2)
    local_tap, cloud_tap = Wiretap(servers[0].url), Wiretap(cloud.url)
    for tap in (local_tap, cloud_tap):
        tap.start()
    try:
        monkeypatch.setenv("COMFY_NB_CLOUD_URL", cloud_tap.url)
        monkeypatch.delenv("COMFY_CLOUD_API_KEY", raising=False)
        asked: list[str] = []

        def type_the_key(prompt: str = "") -> str:
            asked.append(prompt)
            return KEY

        monkeypatch.setattr(getpass, "getpass", type_the_key)
        run(shell, f"%comfy connect {local_tap.url} cloud")
        assert len(asked) == 1
        swept = run(shell, sweep_cell("1,2"))
        assert {row["server"] for row in swept.rows()} == {local_tap.url, cloud_tap.url}
        run(shell, "%comfy status")
        out = capsys.readouterr().out + repr(magics(shell).client)
        assert f"  {cloud_tap.url} (cloud, " in out
        assert KEY not in out
        magics(shell).close()
        assert local_tap.requests() and cloud_tap.requests()
        assert not local_tap.carries(KEY)
        assert cloud_tap.carries(KEY)
    finally:
        local_tap.close()
        cloud_tap.close()


def test_a_typed_key_for_two_members_is_refused_before_anything_connects(
        servers: list[RunningEmulator], shell: InteractiveShell,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``cloud`` and Comfy Cloud's URL are both Comfy Cloud: one typed key cannot say which
    member it is for, and none gets it."""
    monkeypatch.setenv("COMFY_NB_CLOUD_URL", "http://127.0.0.1:9")  # never reached
    monkeypatch.delenv("COMFY_CLOUD_API_KEY", raising=False)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": KEY)
    outcome = shell.run_cell("%comfy connect cloud http://127.0.0.1:9")
    error = outcome.error_in_exec
    assert isinstance(error, UsageError) and "each key to one server only" in str(error)
    assert KEY not in str(error)
    assert magics(shell).client is None


def test_status_and_queue_say_which_member_has_each_job(
        emulators: Emulators, shell: InteractiveShell,
        capsys: pytest.CaptureFixture[str]) -> None:
    # jobs of several seconds: still queued or running when the queue is read
    slow = [emulators(node_delay=3.0), emulators(node_delay=3.0)]
    run(shell, f"%comfy connect {slow[0].url} {slow[1].url}")
    try:
        for color in (1, 2):
            run(shell, f"%%comfy_run job{color} --no-wait -q\n{json.dumps(invert(color))}")
        placed = {shell.user_ns[f"job{color}"].id: magics(shell).client.server_of(
            shell.user_ns[f"job{color}"].id) for color in (1, 2)}
        assert set(placed.values()) == {slow[0].url, slow[1].url}
        capsys.readouterr()
        run(shell, "%comfy queue")
        queue = capsys.readouterr().out
        run(shell, "%comfy status")
        status = capsys.readouterr().out
        for job_id, server in placed.items():
            [line] = [line for line in queue.splitlines() if line.startswith(job_id)]
            assert line.rstrip().endswith(server)
            [line] = [line for line in status.splitlines() if line.startswith(job_id)]
            assert line.rstrip().endswith(server)
        assert "server" in queue.splitlines()[0] and "pool of 2 servers" in status
    finally:
        run(shell, "%comfy cancel --all")


# -- sweep panels and grids on a pool ------------------------------------------------------------


def test_the_text_panel_of_a_sweep_on_a_pool_ends_with_each_members_lane(
        servers: list[RunningEmulator], shell: InteractiveShell,
        capsys: pytest.CaptureFixture[str]) -> None:
    first, second = servers
    run(shell, f"%comfy connect {first.url} {second.url}")
    swept = run(shell, sweep_cell("1,2,3,4"))
    rows = swept.rows()
    ran = {server.url: sum(1 for row in rows if row["server"] == server.url)
           for server in servers}
    assert sum(ran.values()) == 4 and all(ran.values())
    lines = capsys.readouterr().out.splitlines()
    ending = max(index for index, line in enumerate(lines)
                 if line.startswith("comfy_nb sweep of 4 jobs"))
    assert lines[ending + 1:ending + 3] == [
        f"  {server.url} (capacity 1): running 0 · queued 0 · done {ran[server.url]}"
        for server in servers]
    plain = render_sweep(swept, include={"text/plain"})["text/plain"]
    for row in rows:  # the grid's table names the member of each item
        assert re.search(rf"^{row['EmptyImage.color']}\s+succeeded\s+{re.escape(row['server'])}"
                         r"\s", plain, re.M), plain


def test_the_html_panel_of_a_sweep_on_a_pool_shows_the_lanes_as_it_runs(
        servers: list[RunningEmulator], handles: list[FakeHandle],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMFY_NB_CACHE", "off")
    with comfy_nb.connect([server.url for server in servers], poll_interval=0.1) as pool:
        swept = comfy_nb.sweep(invert(), {"EmptyImage.color": [1, 2, 3, 4]}, client=pool,
                               progress="html", timeout=WAIT)
    (handle,) = handles
    live = [obj for _, obj in handle.updates[:-1] if isinstance(obj, dict)]
    assert handle.updates[-1][1] is swept
    for obj in [handle.shown, *live]:  # every state of the panel has a lane per member
        assert obj["text/html"].count("<tr><td") == 2
        assert all(server.url in obj["text/html"] and server.url in obj["text/plain"]
                   for server in servers)
    latest = re.findall(r"latest: EmptyImage\.color=\d+ succeeded on (\S+)</small>",
                        "".join(obj["text/html"] for obj in live))
    assert latest and set(latest) <= {server.url for server in servers}
    # while it ran, some state showed a member running one job (server, capacity 1, running 1)
    assert any(re.search(rf"<td[^>]*>{re.escape(server.url)}</td><td[^>]*>1</td><td[^>]*>1</td>",
                         obj["text/html"]) for obj in live for server in servers)
    markup = render_sweep(swept, include={"text/html"})["text/html"]
    assert 'class="comfy-nb-sweep-lanes"' in markup and "<th>server</th>" in markup
    for row in swept.rows():
        assert f"<td>{row['server']}</td>" in markup
    grid = SweepGrid(swept, "EmptyImage.color")
    assert [cell["server"] for cell in grid.cells()] == [row["server"] for row in swept.rows()]
    static = grid.html()
    assert static.count('class="comfy-nb-grid-server"') == 4


def test_a_sweep_on_one_server_shows_no_lanes(servers: list[RunningEmulator],
                                               handles: list[FakeHandle],
                                               monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with comfy_nb.connect(servers[0].url) as client:
        swept = comfy_nb.sweep(invert(), {"EmptyImage.color": [1, 2]}, client=client,
                               progress="html", timeout=WAIT, cache=False)
    (handle,) = handles
    assert "comfy-nb-sweep-lanes" not in handle.shown["text/html"]
    markup = render_sweep(swept, include={"text/html"})["text/html"]
    assert "comfy-nb-sweep-lanes" not in markup and "<th>server</th>" not in markup
    grid = SweepGrid(swept, "EmptyImage.color")
    assert {cell["server"] for cell in grid.cells()} == {""}
    assert "comfy-nb-grid-server" not in grid.html()
    assert swept.rows()[0]["server"] == servers[0].url  # the data has it all the same


def test_lanes_are_read_without_waiting_for_the_sweep(
        emulators: Emulators, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A sweep that does not wait: its lanes count the items placed on each member so far."""
    monkeypatch.chdir(tmp_path)
    slow = [emulators(node_delay=1.0), emulators(node_delay=1.0)]
    with comfy_nb.connect([server.url for server in slow], poll_interval=0.1) as pool:
        swept = comfy_nb.sweep(invert(), {"EmptyImage.color": [1, 2, 3, 4]}, client=pool,
                               progress="off", wait=False, cache=False)
        try:
            deadline = time.monotonic() + WAIT
            while sum(lane["running"] + lane["queued"] for lane in swept.lanes()) < 2 \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
            lanes = swept.lanes()
            assert [lane["server"] for lane in lanes] == [server.url for server in slow]
            # one job each: each member runs one at a time, and the sweep keeps two in flight
            assert [lane["running"] + lane["queued"] for lane in lanes] == [1, 1]
            assert [lane["done"] for lane in lanes] == [0, 0]  # a job takes seconds
        finally:
            swept.cancel()
