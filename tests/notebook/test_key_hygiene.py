"""Where an API key goes and where it never shows up.

A canary key run through every notebook on the Cloud-dialect emulator never shows up in a saved
notebook, an output file, the result cache, a provenance record or a debug log. A local server
never receives a key (a :class:`~tests.wiretap.Wiretap` records every byte it is sent); a Cloud
server is asked what it is without one. ``%xmode Verbose`` tracebacks of failures deep inside
(refused key, unreachable server, a submit answered 500 or 402) never show the key, whether it
came from the environment, ``connect(api_key=...)``, the ``getpass`` prompt or ``partner_key``;
nor do DEBUG logs of every logger of a client process (httpx, httpcore, asyncio...)."""

from __future__ import annotations

import base64
import getpass
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell

import comfy_nb
from comfy_nb.client import (
    AuthenticationError,
    PaymentRequiredError,
    SubmissionUncertain,
    TransportError,
)
from comfy_nb.emulator import RunningEmulator, serve

from ..both_clients import WAIT
from ..factories import Emulators
from ..wiretap import Wiretap
from .nbrun import execute_notebook, notebook_problems
from .test_notebooks import NOTEBOOK_DIR, NOTEBOOKS

CANARY = "canary-key-3b8f0c6e2d9a4f71"
PARTNER = "partner-key-7c4e1a9b3d6f2e58"

# every logger at DEBUG into a file the test reads (an IPython startup file of the kernel)
LOG_SETUP = """\
import logging
logging.basicConfig(filename={log!r}, level=logging.DEBUG, force=True,
                    format="%(name)s %(levelname)s %(message)s")
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_canary_key_appears_nowhere(tmp_path: Path) -> None:
    workdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, workdir,
                    ignore=shutil.ignore_patterns("*.executed.ipynb", "comfy_outputs"))
    log = tmp_path / "kernel-debug.log"
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-debug-log.py").write_text(LOG_SETUP.format(log=str(log)))
    with serve(dialect="cloud", api_key=CANARY, step_delay=0.0) as cloud:
        env = {"COMFY_URL": cloud.url, "COMFY_CLOUD_API_KEY": CANARY,
               "COMFY_NB_CLOUD_URL": cloud.url,  # the key from the environment goes to Cloud only
               "COMFY_NB_CACHE": "on", "COMFY_NB_CACHE_DIR": str(tmp_path / "cache"),
               "IPYTHONDIR": str(tmp_path / "ipython")}
        for source in NOTEBOOKS:
            path = workdir / source.name
            nb = execute_notebook(path, env=env, timeout=300)
            assert notebook_problems(nb) == [], source.name
            nbformat.write(nb, path)  # saved as a user would save it
    assert log.stat().st_size > 0  # the kernels did log
    assert any((tmp_path / "cache").rglob("*"))  # results were cached
    marks = [CANARY.encode(), base64.b64encode(CANARY.encode())[:24]]
    leaks = [str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")
             if path.is_file() and any(mark in path.read_bytes() for mark in marks)]
    assert leaks == []


# -- where the key goes ---------------------------------------------------------------------------

OTHER = "other-key-5e1d9c2b7a4f8e03"  # a key the servers do not accept


def run_and_download(client: comfy_nb.Client) -> None:
    """A job followed on the websocket, its image downloaded."""
    result = client.run("txt2img", steps=1, timeout=WAIT)
    assert result.images[0].read().startswith(b"\x89PNG")


@pytest.fixture
def local_tap(emulators: Emulators) -> Iterator[Wiretap]:
    """A local-ComfyUI emulator behind a proxy that records what clients send it."""
    tap = Wiretap(emulators(step_delay=0.0).url).start()
    try:
        yield tap
    finally:
        tap.close()


@pytest.fixture
def cloud(emulators: Emulators) -> RunningEmulator:
    return emulators("cloud", api_key=CANARY, step_delay=0.0)


def test_a_local_server_never_receives_the_key(local_tap: Wiretap, shell: InteractiveShell,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_CLOUD_API_KEY", CANARY)
    monkeypatch.setenv("COMFY_URL", local_tap.url)
    with comfy_nb.connect() as client:  # COMFY_URL
        run_and_download(client)
    monkeypatch.delenv("COMFY_URL")
    with comfy_nb.connect(local_tap.url) as client:  # an argument
        run_and_download(client)
    result = shell.run_cell(f"%comfy_run txt2img --url {local_tap.url} --set steps=1")
    result.raise_error()
    # a key given for it, too: it goes only to a server that speaks the Cloud API
    with comfy_nb.connect(local_tap.url, api_key=OTHER) as client:
        run_and_download(client)
        with pytest.raises(ValueError, match="partner_key"):
            client.submit("txt2img", partner_key=True)  # this client sends it no key

    heads = local_tap.requests()
    assert len([h for h in heads if h.startswith(b"GET /ws?")]) == 4
    assert len([h for h in heads if h.startswith(b"GET /api/view?")]) >= 3
    assert not local_tap.carries(CANARY) and not local_tap.carries(OTHER)


def test_a_cloud_server_is_asked_what_it_is_without_the_key(cloud: RunningEmulator) -> None:
    tap = Wiretap(cloud.url).start()
    try:
        with comfy_nb.connect(tap.url, api_key=CANARY) as client:
            run_and_download(client)
        heads = tap.requests()
    finally:
        tap.close()
    assert heads[0].startswith(b"GET /api/system_stats ")
    assert CANARY.encode() not in heads[0]
    assert all(CANARY.encode() in head for head in heads[1:])  # then on every request


def test_the_environment_key_goes_to_comfy_cloud_only(cloud: RunningEmulator,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tap = Wiretap(cloud.url).start()
    try:
        monkeypatch.setenv("COMFY_CLOUD_API_KEY", CANARY)
        with pytest.raises(AuthenticationError) as refused:
            comfy_nb.connect(tap.url)  # a server speaking Cloud, but not Comfy Cloud
        assert "COMFY_CLOUD_API_KEY is sent only to Comfy Cloud" in str(refused.value)
        assert "api_key=" in str(refused.value)
        assert not tap.carries(CANARY)
        monkeypatch.setenv("COMFY_NB_CLOUD_URL", tap.url)  # now it is Comfy Cloud
        with comfy_nb.connect() as client:
            run_and_download(client)
        assert tap.carries(CANARY)
    finally:
        tap.close()


# -- logs -----------------------------------------------------------------------------------------

CLIENT_WITH_DEBUG_LOGS = """\
import logging, sys
logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
import comfy_nb
with comfy_nb.connect() as client:
    result = client.run("txt2img", steps=1, partner_key=True, timeout=60)
    result.save(sys.argv[1])
    result.images[0].read()
"""


def test_debug_logs_of_every_logger_show_no_key_and_no_signed_url(
        cloud: RunningEmulator, tmp_path: Path) -> None:
    env = {**os.environ, "COMFY_URL": cloud.url, "COMFY_NB_CLOUD_URL": cloud.url,
           "COMFY_CLOUD_API_KEY": CANARY}
    done = subprocess.run([sys.executable, "-c", CLIENT_WITH_DEBUG_LOGS, str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    logged = done.stderr
    assert done.returncode == 0, logged[-3000:]
    names = {line.split(" ", 1)[0] for line in logged.splitlines()}
    assert {"httpx", "httpcore.http11", "httpcore.connection", "asyncio"} <= names, names
    # the storage redirect was logged, without its signature
    assert re.search(r"receive_response_headers\.complete .*302", logged)
    assert "?[redacted]" in logged
    assert "X-Goog-Signature" not in logged and "Signature=" not in logged
    marks = [CANARY, base64.b64encode(CANARY.encode()).decode()[:16]]
    assert [mark for mark in marks if mark in logged] == []


# -- Verbose tracebacks ---------------------------------------------------------------------------


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """IPython with comfy_nb, whole tracebacks (``short_errors = False``) in ``%xmode
    Verbose``, and ``KEYFILE``: the path of a file holding the key, so that no cell names it."""
    monkeypatch.setenv("COMFY_NB_PROGRESS", "off")
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    mode = ip.InteractiveTB.mode
    ip.run_line_magic("load_ext", "comfy_nb")
    ip.run_line_magic("xmode", "Verbose")
    ip.run_line_magic("config", "ComfyMagics.short_errors = False")
    ip.run_cell(f"import comfy_nb\nfrom comfy_nb import RetryPolicy\n"
                f"KEYFILE = {str(tmp_path / 'key.txt')!r}\n")
    yield ip
    ip.run_line_magic("unload_ext", "comfy_nb")
    ip.config.pop("ComfyMagics", None)
    ip.run_line_magic("xmode", mode)
    comfy_nb.ComfyError.short_tracebacks = True


def failing_cell(ip: InteractiveShell, source: str, capsys: pytest.CaptureFixture[str],
                 expected: type[BaseException]) -> str:
    """Run a cell that must fail with ``expected``; the Verbose traceback IPython printed."""
    capsys.readouterr()
    outcome = ip.run_cell(source)
    error = outcome.error_in_exec or outcome.error_before_exec
    assert isinstance(error, expected), error
    shown = capsys.readouterr().out
    assert "Traceback" in shown or "-----" in shown, shown[:500]
    return shown


def shows_no_secret(shown: str, secret: str) -> None:
    """Nothing of ``secret`` in a traceback that did render frame variables."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    marks = [secret, base64.b64encode(secret.encode()).decode()[:16],
             urllib.parse.quote(secret, safe="")]
    assert [mark for mark in marks if mark in plain] == []
    assert re.search(r"\w+ = ", plain), "no frame variables were shown"


def deep(shown: str, *frames: str) -> None:
    """The traceback went down to these functions (so their variables were on show)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    missing = [name for name in frames if f" in {name}(" not in plain and
               f".{name}(" not in plain]
    assert missing == [], plain[-3000:]


@pytest.mark.parametrize("source", ["environment", "argument", "getpass"])
def test_verbose_tracebacks_never_show_the_key(
        source: str, cloud: RunningEmulator, shell: InteractiveShell, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    keyfile = tmp_path / "key.txt"
    entered: list[str] = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": entered.pop())

    def connect_cell(key: str, url: str) -> str:
        """A cell connecting to ``url`` (as Comfy Cloud) with ``key`` from ``source``."""
        monkeypatch.setenv("COMFY_NB_CLOUD_URL", url)
        monkeypatch.delenv("COMFY_CLOUD_API_KEY", raising=False)
        monkeypatch.delenv("COMFY_URL", raising=False)
        keyfile.write_text(key)
        options = "retry=RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02)"
        if source == "environment":
            monkeypatch.setenv("COMFY_URL", url)
            monkeypatch.setenv("COMFY_CLOUD_API_KEY", key)
            return f"client = comfy_nb.connect({options})"
        if source == "argument":
            return f"client = comfy_nb.connect({url!r}, api_key=open(KEYFILE).read(), {options})"
        entered.append(key)
        return "%comfy connect cloud"

    # a key the server refuses
    shown = failing_cell(shell, connect_cell(OTHER, cloud.url), capsys, AuthenticationError)
    deep(shown, "open", "_open_socket")
    shows_no_secret(shown, OTHER)

    # a server that does not answer
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
    shown = failing_cell(shell, connect_cell(CANARY, nobody), capsys, TransportError)
    deep(shown, "_detect_dialect", "_retrying")
    shows_no_secret(shown, CANARY)

    # a failure deep inside a run, at the submit, with partner_key=True: the client's key
    # in the body
    run(shell, connect_cell(CANARY, cloud.url))
    if source == "getpass":
        run(shell, "client = get_ipython()._comfy_nb_magics.client")
    cloud.faults.update(no_credits=True)
    shown = failing_cell(shell, "client.run('txt2img', steps=1, partner_key=True)", capsys,
                         PaymentRequiredError)
    deep(shown, "submit", "request", "_retrying")
    shows_no_secret(shown, CANARY)
    if source != "argument":  # the session connects with the key from the same source
        shown = failing_cell(shell, "%comfy_run txt2img --set steps=1", capsys,
                             PaymentRequiredError)
        deep(shown, "comfy_run", "submit")
        shows_no_secret(shown, CANARY)


@pytest.mark.parametrize("how", ["partner_key", "extra_data"])
def test_verbose_tracebacks_never_show_a_partner_key(
        how: str, cloud: RunningEmulator, shell: InteractiveShell, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "key.txt").write_text(PARTNER)
    run(shell, f"client = comfy_nb.connect({cloud.url!r}, api_key={CANARY!r}, "
               "retry=RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02))")
    run(shell, "client.object_info()")  # read before the server fails
    given = ("partner_key=open(KEYFILE).read()" if how == "partner_key" else
             "extra_data={'api_key_comfy_org': open(KEYFILE).read()}")
    cloud.faults.update(http_error_count=1000, http_error_status=500)
    # a 500 on submit, and the server cannot be asked whether it queued the job
    shown = failing_cell(shell, f"client.run('txt2img', steps=1, {given})", capsys,
                         SubmissionUncertain)
    deep(shown, "submit", "request", "_retrying")
    shows_no_secret(shown, PARTNER)
    cloud.faults.update(http_error_count=0, no_credits=True)
    shown = failing_cell(shell, f"client.submit('txt2img', steps=1, {given})", capsys,
                         PaymentRequiredError)
    deep(shown, "submit", "request")
    shows_no_secret(shown, PARTNER)
    run(shell, "client.close()")


def run(ip: InteractiveShell, source: str) -> Any:
    """Run a cell; raise what it raised."""
    outcome = ip.run_cell(source)
    outcome.raise_error()
    return outcome.result


# -- Comfy API v2 ---------------------------------------------------------------------------------


@pytest.fixture
def v2_tap(emulators: Emulators) -> Iterator[tuple[Wiretap, str]]:
    """comfy-api-proxy (its token: the canary) over a local emulator, behind a wiretap; yields
    the wiretap and the proxy's own URL."""
    from ..v2_proxy import serve_proxy

    with serve_proxy(str(emulators(step_delay=0.0).url), token=CANARY) as proxy:
        tap = Wiretap(proxy.url).start()
        try:
            yield tap, proxy.url
        finally:
            tap.close()


def test_a_v2_server_gets_the_key_as_a_bearer_token_only(v2_tap: tuple[Wiretap, str]) -> None:
    tap, _ = v2_tap
    with comfy_nb.connect(tap.url, api_key=CANARY) as client:
        assert client.dialect == "v2"
        run_and_download(client)
        client.upload_image(b"\x89PNG\r\n\x1a\n" + bytes(range(64)), name="canary.png")
    heads = tap.requests()
    asking = [head for head in heads
              if head.startswith((b"GET /api/system_stats ", b"GET /api/v2/health "))]
    assert heads[:2] == asking  # what it is: asked first, without the key
    assert all(CANARY.encode() not in head for head in asking)
    api = heads[2:]  # then the key on every request (v1 routes of the same origin included)
    assert any(head.startswith(b"GET /api/v2/jobs/") and b"/events " in head for head in api)
    assert any(head.startswith(b"HEAD /api/v2/assets/by-hash/blake3:") for head in api)
    for head in api:
        first_line, _, headers = head.partition(b"\r\n")
        assert b"\r\nauthorization: bearer " + CANARY.encode() + b"\r\n" in (
            b"\r\n" + headers.lower().replace(CANARY.lower().encode(), CANARY.encode()))
        assert CANARY.encode() not in first_line  # never in a URL
        assert b"x-api-key" not in headers.lower()


def test_the_v2_environment_key_goes_to_comfy_base_url_only(
        v2_tap: tuple[Wiretap, str], monkeypatch: pytest.MonkeyPatch) -> None:
    tap, _ = v2_tap
    monkeypatch.setenv("COMFY_API_KEY", CANARY)
    monkeypatch.setenv("COMFY_BASE_URL", "http://127.0.0.1:9")  # another server's origin
    with comfy_nb.connect(tap.url) as client:
        assert client.dialect == "v2"
        with pytest.raises(AuthenticationError, match="COMFY_API_KEY"):
            client.run("txt2img", steps=1, timeout=WAIT)
    assert not tap.carries(CANARY)
    monkeypatch.setenv("COMFY_BASE_URL", tap.url)  # now it is the key's server
    with comfy_nb.connect() as client:
        run_and_download(client)
    assert tap.carries(CANARY)
