"""The HTTP transport against the emulator (both dialects, real sockets): retries and backoff,
typed errors, downloads through Cloud's signed-URL redirect, and key hygiene.

Waits between retries go through a recording ``sleep``, so tests see how often and how long the
transport would have waited without ever measuring the clock. ``httpx.MockTransport`` appears
only where a real server cannot produce the case (redirect chains, odd schemes, header audits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
import zlib
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfy_nb import RetryPolicy
from comfy_nb.client._http_errors import error_for_status
from comfy_nb.client._transport import HttpResponse, Transport
from comfy_nb.emulator import RunningEmulator
from comfy_nb.errors import (
    AuthenticationError,
    ComfyError,
    DownloadTimeout,
    InvalidURL,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)
from tests.http_server import http_server

from ..factories import Emulators

KEY = "comfyui-SECRET-transport-k3y-5f1e9c0b7d"
WRONG_KEY = "comfyui-WRONG-transport-k3y-a8d2e4f6b1"
NO_JITTER = RetryPolicy(jitter=0.0)


def workflow(width: int = 64) -> dict[str, Any]:
    return {"prompt": {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": width, "height": 64, "batch_size": 1, "color": 255}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
    }}


class Sleeps(list[float]):
    """A ``sleep`` that records the waits instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(params=["local", "cloud"])
def server(request: pytest.FixtureRequest, emulators: Emulators) -> RunningEmulator:
    options: dict[str, Any] = {"api_key": KEY} if request.param == "cloud" else {}
    return emulators(request.param, step_delay=0.01, **options)


@pytest.fixture
def cloud(emulators: Emulators) -> RunningEmulator:
    return emulators("cloud", step_delay=0.01, api_key=KEY)


def route(server: RunningEmulator, path: str) -> str:
    """``/prompt`` on a local server, ``/api/prompt`` on Cloud."""
    return f"/api{path}" if server.dialect == "cloud" else path


def transport(server: RunningEmulator, sleeps: Sleeps, **options: Any) -> Transport:
    """A transport for ``server``; it carries the secret key on both dialects (a local server
    ignores it), so every scenario also checks that the key stays out of errors."""
    return Transport(server.url, api_key=options.pop("api_key", KEY), sleep=sleeps,
                     **options)


def assert_clean(exc: BaseException, server: RunningEmulator | None = None) -> None:
    """Neither the key nor a signed URL nor a query string in the error or its chain."""
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen)):
            assert KEY not in text and WRONG_KEY not in text
            assert "X-Goog" not in text and "filename=" not in text
            if server is not None and server.storage_url:
                assert server.storage_url not in text
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)


async def run_workflow(http: Transport, server: RunningEmulator) -> dict[str, str]:
    """Run the two-node workflow and return its output file descriptor."""
    prompt_id = (await http.request("POST", route(server, "/prompt"),
                                    json=workflow())).json()["prompt_id"]
    for _ in range(1000):
        if server.dialect == "cloud":
            job = (await http.request("GET", f"/api/jobs/{prompt_id}")).json()
            outputs = job.get("outputs") if job.get("status") == "completed" else None
        else:
            entry = (await http.request("GET", f"/history/{prompt_id}")).json().get(prompt_id)
            outputs = entry["outputs"] if entry and entry["status"]["completed"] else None
        if outputs:
            image = outputs["2"]["images"][0]
            return {k: image[k] for k in ("filename", "subfolder", "type")}
        await asyncio.sleep(0.01)
    raise AssertionError("the workflow did not finish")


def on_disk(server: RunningEmulator, file: dict[str, str]) -> bytes:
    return Path(server.output_dir, file["subfolder"], file["filename"]).read_bytes()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- retries ------------------------------------------------------------------------------------


async def test_get_is_retried_after_two_503s(server: RunningEmulator) -> None:
    server.faults.update(http_error_count=2, http_error_status=503)
    sleeps = Sleeps()
    async with transport(server, sleeps) as http:
        response = await http.request("GET", route(server, "/queue"))
    assert response.status == 200 and "queue_running" in response.json()
    assert server.faults.http_error_count == 0  # both injected errors were consumed
    assert len(sleeps) == 2  # two retries, three attempts
    assert 0.375 <= sleeps[0] <= 0.625 and 0.75 <= sleeps[1] <= 1.25  # 0.5, 1.0 +/- 25 %


async def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=4.0, jitter=0.0)
    assert [policy.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    jittered = [RetryPolicy(jitter=0.25).delay(2) for _ in range(200)]
    assert all(1.5 <= d <= 2.5 for d in jittered) and len(set(jittered)) > 1


async def test_ever_failing_get_gives_up_after_the_attempts(server: RunningEmulator) -> None:
    server.faults.update(http_error_count=100, http_error_status=500)
    sleeps = Sleeps()
    async with transport(server, sleeps, retry=RetryPolicy(attempts=3)) as http:
        with pytest.raises(ServerError) as caught:
            await http.request("GET", route(server, "/queue"))
    assert caught.value.status == 500 and len(sleeps) == 2
    assert server.faults.http_error_count == 97
    assert_clean(caught.value, server)


async def test_429_retry_after_is_honoured(server: RunningEmulator) -> None:
    server.faults.update(http_error_count=1, http_error_status=429, retry_after=3)
    sleeps = Sleeps()
    async with transport(server, sleeps) as http:
        response = await http.request("GET", route(server, "/queue"))
    assert response.status == 200
    assert sleeps == [3.0]


async def test_retry_after_is_capped(server: RunningEmulator) -> None:
    server.faults.update(http_error_count=1, http_error_status=429, retry_after=120)
    sleeps = Sleeps()
    async with transport(server, sleeps, retry=RetryPolicy(max_retry_after=5.0)) as http:
        await http.request("GET", route(server, "/queue"))
    assert sleeps == [5.0]


async def test_429_is_retried_even_for_post_then_raises_rate_limit(
        server: RunningEmulator) -> None:
    server.faults.update(http_error_count=100, http_error_status=429, retry_after=2)
    sleeps = Sleeps()
    async with transport(server, sleeps) as http:
        with pytest.raises(RateLimitError) as caught:
            await http.request("POST", route(server, "/prompt"), json=workflow())
    assert sleeps == [2.0, 2.0, 2.0]  # 4 attempts: the request was refused, never processed
    assert caught.value.retry_after == 2.0 and caught.value.status == 429
    assert_clean(caught.value, server)


async def test_post_is_not_retried_on_503_unless_retry_unsafe(server: RunningEmulator) -> None:
    sleeps = Sleeps()
    async with transport(server, sleeps) as http:
        server.faults.update(http_error_count=1, http_error_status=503)
        with pytest.raises(ServerError) as caught:
            await http.request("POST", route(server, "/prompt"), json=workflow())
        assert caught.value.status == 503 and sleeps == []
        assert_clean(caught.value, server)

        server.faults.update(http_error_count=1, http_error_status=503)
        response = await http.request("POST", route(server, "/prompt"), retry_unsafe=True,
                                      json=workflow())
    assert response.status == 200 and server.state.number == 1  # queued once
    assert len(sleeps) == 1 and server.faults.http_error_count == 0


async def test_post_is_not_retried_when_its_answer_is_lost(server: RunningEmulator) -> None:
    sleeps = Sleeps()
    async with transport(server, sleeps) as http:
        server.faults.update(lose_prompt_answers=1)
        with pytest.raises(TransportError) as caught:
            await http.request("POST", route(server, "/prompt"), json=workflow())
    assert not caught.value.never_sent and "the connection broke" in str(caught.value)
    assert sleeps == [] and server.state.number == 1  # sent once, and queued
    assert_clean(caught.value, server)


async def test_connection_refused_after_all_attempts() -> None:
    port = free_port()
    sleeps = Sleeps()
    async with Transport(f"http://127.0.0.1:{port}/", api_key=KEY, sleep=sleeps,
                         retry=RetryPolicy(attempts=3)) as http:
        with pytest.raises(TransportError) as caught:
            await http.request("GET", "/api/queue", params={"token": KEY})
        assert len(sleeps) == 2
        message = str(caught.value)
        assert f"127.0.0.1:{port}" in message and "connection refused" in message
        assert "/api/queue" not in message
        assert_clean(caught.value)
        assert caught.value.never_sent

        sleeps.clear()  # nothing was sent: a POST is retried too
        with pytest.raises(TransportError) as post_error:
            await http.request("POST", "/api/prompt", json=workflow())
        assert len(sleeps) == 2 and post_error.value.never_sent

        sleeps.clear()
        with pytest.raises(TransportError) as download_error:  # downloads retry like GET
            await http.download("/api/view", {"filename": "x.png"})
        assert len(sleeps) == 2
        assert_clean(download_error.value)


async def test_timeouts_are_retried_then_raised(server: RunningEmulator) -> None:
    server.faults.update(latency=0.5)
    sleeps = Sleeps()
    async with transport(server, sleeps, timeout=0.05, retry=RetryPolicy(attempts=2)) as http:
        with pytest.raises(TransportError) as caught:
            await http.request("GET", route(server, "/queue"))
    assert len(sleeps) == 1 and "timed out" in str(caught.value)
    assert_clean(caught.value, server)


# -- typed errors -------------------------------------------------------------------------------


async def test_wrong_or_missing_key_is_authentication_error(cloud: RunningEmulator) -> None:
    sleeps = Sleeps()
    for key in (WRONG_KEY, None):
        async with Transport(cloud.url, api_key=key, sleep=sleeps) as http:
            with pytest.raises(AuthenticationError) as caught:
                await http.request("GET", "/api/queue")
        assert caught.value.status == 401 and "GET /api/queue" in str(caught.value)
        assert_clean(caught.value, cloud)
    assert sleeps == []  # a wrong key does not get better by asking again


async def test_no_credits_is_payment_required(cloud: RunningEmulator) -> None:
    cloud.faults.update(no_credits=True)
    sleeps = Sleeps()
    async with transport(cloud, sleeps) as http:
        with pytest.raises(PaymentRequiredError) as caught:
            await http.request("POST", "/api/prompt", json=workflow(), retry_unsafe=True,
                               what="submitting the workflow")
    assert caught.value.status == 402 and sleeps == []
    assert str(caught.value) == ("submitting the workflow was refused (402): Insufficient "
                                 "credits: add credits to your Comfy account.")
    assert_clean(caught.value, cloud)


async def test_rate_limited_submit_is_rate_limit_error(cloud: RunningEmulator) -> None:
    cloud.faults.update(rate_limited=True)
    sleeps = Sleeps()
    async with transport(cloud, sleeps, retry=RetryPolicy(attempts=2)) as http:
        with pytest.raises(RateLimitError) as caught:
            await http.request("POST", "/api/prompt", json=workflow())
    assert caught.value.retry_after == 1.0 and sleeps == [1.0]
    assert str(caught.value) == ("POST /api/prompt was rate limited (429): Rate limit exceeded. "
                                 "Please try again later. Retry after 1 s.")
    assert_clean(caught.value, cloud)


def test_error_texts_read_as_sentences() -> None:
    assert str(error_for_status(402, {}, what="submitting")) == (
        "submitting was refused (402): not enough credits. Add credits to your Comfy account.")
    assert str(error_for_status(402, {"message": "Balance is zero"}, what="submitting")) == (
        "submitting was refused (402): Balance is zero. Add credits to your Comfy account.")
    assert str(error_for_status(429, "", retry_after=2.5, what="submitting")) == (
        "submitting was rate limited (429): retry after 2.5 s.")
    assert str(error_for_status(429, {"error": "Too many requests!"}, what="x")) == (
        "x was rate limited (429): Too many requests!")


def test_html_error_bodies_give_their_title_or_nothing() -> None:
    page = ("<!DOCTYPE html>\n<html>\n  <head><title>502 Bad &amp; Gateway</title></head>\n"
            "  <body><h1>502</h1>\n<p>nginx</p></body>\n</html>\n")
    assert str(error_for_status(502, page, what="GET /api/queue")) == (
        "GET /api/queue failed on the server (502): 502 Bad & Gateway")
    untitled = "<html><body>\n<p>Not here</p>\n</body></html>"
    assert str(error_for_status(404, untitled, what="GET /x")) == "GET /x: not found (404)"
    assert str(error_for_status(500, "line one\n  line two\n", what="y")) == (
        "y failed on the server (500): line one line two")


async def test_an_html_error_page_stays_out_of_the_message() -> None:
    page = b"<!DOCTYPE HTML>\n<html lang='en'><head><title>Error response</title></head>\n" \
           b"<body><h1>Error response</h1><p>Error code: 404</p></body></html>\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, content=page, headers={"Content-Type": "text/html"})

    async with Transport("https://api.test", httpx_transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(NotFoundError) as caught:
            await http.request("GET", "/api/system_stats")
    assert str(caught.value) == "GET /api/system_stats: not found (404): Error response"
    assert caught.value.body.startswith("<!DOCTYPE HTML>")  # all of it, for whoever wants it


async def test_missing_file_is_not_found(server: RunningEmulator, tmp_path: Path) -> None:
    sleeps = Sleeps()
    params = {"filename": "missing.png", "subfolder": "", "type": "output"}
    async with transport(server, sleeps) as http:
        with pytest.raises(NotFoundError) as caught:
            await http.request("GET", route(server, "/view"), params=params)
        assert caught.value.status == 404
        assert_clean(caught.value, server)
        answer = await http.request("GET", route(server, "/view"), params=params,
                                    ok_statuses={404})
        assert answer.status == 404
        with pytest.raises(NotFoundError) as download_error:
            await http.download(route(server, "/view"), params, to=tmp_path / "x.png")
        assert_clean(download_error.value, server)
    assert sleeps == [] and list(tmp_path.iterdir()) == []


async def test_invalid_workflow_is_validation_error(server: RunningEmulator) -> None:
    sleeps = Sleeps()
    async with transport(server, sleeps) as http:
        with pytest.raises(ValidationError) as caught:
            await http.request("POST", route(server, "/prompt"), json=workflow(width=0))
    error = caught.value
    assert error.status == 400 and error.error_type == "prompt_outputs_failed_validation"
    [problem] = error.node_errors
    assert (problem.node_id, problem.class_type, problem.type, problem.input_name) == (
        "1", "EmptyImage", "value_smaller_than_min", "width")
    assert "node 1 (EmptyImage)" in str(error) and sleeps == []
    assert_clean(error, server)


async def test_3xx_answers_are_returned_to_the_caller(cloud: RunningEmulator) -> None:
    async with transport(cloud, Sleeps()) as http:
        file = await run_workflow(http, cloud)
        answer = await http.request("GET", "/api/view", params=file)
    assert answer.status == 302
    assert answer.headers["location"].startswith(cloud.storage_url)


# -- responses ----------------------------------------------------------------------------------


async def test_http_response_fields(server: RunningEmulator) -> None:
    async with transport(server, Sleeps()) as http:
        answer = await http.request("GET", route(server, "/queue"))
    assert isinstance(answer, HttpResponse)
    assert all(name == name.lower() for name in answer.headers)
    assert "json" in answer.headers["content-type"]
    assert answer.json() == {"queue_running": [], "queue_pending": []}
    assert answer.text.startswith("{")
    latin = HttpResponse(200, {"content-type": "text/plain; charset=latin-1"},
                         "é".encode("latin-1"))
    assert latin.text == "é"


# -- downloads ----------------------------------------------------------------------------------


async def test_download_to_memory_and_to_a_file(server: RunningEmulator, tmp_path: Path) -> None:
    sleeps = Sleeps()
    async with transport(server, sleeps) as http:
        file = await run_workflow(http, server)
        expected = on_disk(server, file)
        data = await http.download(route(server, "/view"), file)
        assert data == expected and data[:8] == b"\x89PNG\r\n\x1a\n"

        target = tmp_path / "out.png"
        written = await http.download(route(server, "/view"), file, to=target, chunk_size=64)
    assert written == target and target.read_bytes() == expected
    assert leftovers(tmp_path) == [] and sleeps == []


async def test_cloud_download_works_because_no_key_reaches_storage(
        cloud: RunningEmulator) -> None:
    async with transport(cloud, Sleeps()) as http:
        file = await run_workflow(http, cloud)
        assert await http.download("/api/view", file) == on_disk(cloud, file)

    # a client that follows the redirect with its key is refused by the storage origin
    async with httpx.AsyncClient(follow_redirects=True, headers={"X-API-Key": KEY}) as leaky:
        answer = await leaky.get(f"{cloud.url}/api/view", params=file)
    assert str(answer.url).startswith(cloud.storage_url)
    assert answer.status_code == 400 and b"must not carry the Comfy API key" in answer.content


class SpoilSignatures(httpx.AsyncBaseTransport):
    """Real sockets, but the emulator's signing secret changes just before each storage request,
    so the storage origin answers 403 SignatureDoesNotMatch to a correctly signed URL."""

    def __init__(self, server: RunningEmulator) -> None:
        self.server = server
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(self.server.storage_url):
            self.server.state.storage_secret = uuid.uuid4().bytes
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_storage_errors_never_show_the_signed_url(cloud: RunningEmulator) -> None:
    sleeps = Sleeps()
    async with transport(cloud, sleeps) as http:
        file = await run_workflow(http, cloud)
    async with transport(cloud, sleeps, httpx_transport=SpoilSignatures(cloud)) as http:
        with pytest.raises(ComfyError) as caught:
            await http.download("/api/view", file)
    message = str(caught.value)
    assert "the storage server" in message and "403" in message
    assert "SignatureDoesNotMatch" in message and sleeps == []
    assert_clean(caught.value, cloud)


async def test_truncated_download_leaves_nothing_behind(
        server: RunningEmulator, tmp_path: Path) -> None:
    sleeps = Sleeps()
    async with transport(server, sleeps) as http:
        file = await run_workflow(http, server)
        expected = on_disk(server, file)
        server.faults.update(truncate_view=True)

        with pytest.raises(TransportError) as in_memory:
            await http.download(route(server, "/view"), file)
        assert "cut short" in str(in_memory.value) and len(sleeps) == 3  # retried like a GET
        assert_clean(in_memory.value, server)

        target = tmp_path / "new.png"
        with pytest.raises(TransportError) as to_file:
            await http.download(route(server, "/view"), file, to=target)
        assert "cut short" in str(to_file.value)
        assert_clean(to_file.value, server)
        assert list(tmp_path.iterdir()) == []

        existing = tmp_path / "existing.png"
        existing.write_bytes(b"previous contents")
        with pytest.raises(TransportError):
            await http.download(route(server, "/view"), file, to=existing)
        assert existing.read_bytes() == b"previous contents" and leftovers(tmp_path) == []

        server.faults.update(truncate_view=False)
        await http.download(route(server, "/view"), file, to=existing)
    assert existing.read_bytes() == expected and leftovers(tmp_path) == []


async def test_a_cut_short_download_says_how_many_bytes_arrived(
        server: RunningEmulator) -> None:
    """httpx hands bytes over a chunk at a time: what arrived is more than what was written
    when the connection breaks, and the message counts what arrived."""
    Path(server.output_dir, "blob.bin").write_bytes(bytes(range(256)) * 1200)  # 307200 bytes
    file = {"filename": "blob.bin", "subfolder": "", "type": "output"}
    server.faults.update(truncate_view=True)  # half the body, then the connection closes
    async with transport(server, Sleeps(), retry=RetryPolicy(attempts=1)) as http:
        with pytest.raises(TransportError, match="cut short after 153600 of 307200 bytes"):
            await http.download(route(server, "/view"), file)


async def test_a_trickling_download_ends_at_its_deadline(server: RunningEmulator,
                                                         tmp_path: Path) -> None:
    sleeps = Sleeps()
    async with transport(server, sleeps, download_timeout=0.5) as http:
        file = await run_workflow(http, server)
        server.faults.update(trickle_view=0.05)  # a byte every 0.05 s: no read ever times out
        with pytest.raises(DownloadTimeout, match=r"not finished after 0\.5 s") as in_memory:
            await http.download(route(server, "/view"), file)
        assert isinstance(in_memory.value, TransportError)
        assert isinstance(in_memory.value, TimeoutError)
        assert_clean(in_memory.value, server)
        with pytest.raises(DownloadTimeout):
            await http.download(route(server, "/view"), file, to=tmp_path / "new.png")
        assert list(tmp_path.iterdir()) == []  # nothing half-written
        server.faults.update(trickle_view=0.0)
        assert await http.download(route(server, "/view"), file) == on_disk(server, file)
    assert sleeps == []
    with pytest.raises(ValueError, match="download_timeout"):
        Transport(server.url, download_timeout=0)


def gzip_of_zeros(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes (about a thousandth of that)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    parts = [packer.compress(zeros) for _ in range(size >> 20)]
    return b"".join([*parts, packer.flush()])


def gzip_server(body: bytes) -> Any:
    """A plain HTTP server answering every GET with ``body`` as ``Content-Encoding: gzip``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return http_server(Handler)


async def test_a_compression_bomb_is_refused(tmp_path: Path) -> None:
    bomb = gzip_of_zeros(100 << 20)  # 100 MiB from about 100 KiB
    sleeps = Sleeps()
    with gzip_server(bomb) as url:
        async with Transport(url, sleep=sleeps) as http:
            with pytest.raises(TransportError, match="inflated to more than") as caught:
                await http.download("/view", {"filename": "a.bin"}, to=tmp_path / "a.bin")
    assert "compression bomb" in str(caught.value) and sleeps == []  # not tried again
    assert list(tmp_path.iterdir()) == []


async def test_a_compressed_download_within_bounds_arrives_whole() -> None:
    with gzip_server(gzip_of_zeros(8 << 20)) as url:
        async with Transport(url, sleep=Sleeps()) as http:
            assert await http.download("/view", {"filename": "a.bin"}) == bytes(8 << 20)


async def test_download_retries_a_503_then_succeeds(server: RunningEmulator) -> None:
    sleeps = Sleeps()
    async with transport(server, sleeps) as http:
        file = await run_workflow(http, server)
        server.faults.update(http_error_count=1, http_error_status=503)
        assert await http.download(route(server, "/view"), file) == on_disk(server, file)
    assert len(sleeps) == 1


# -- redirect hygiene (cases a real server cannot produce) -------------------------------------


class Recorder:
    """An ``httpx.MockTransport`` handler: an API on api.test that redirects ``/api/view``
    through ``hops`` storage redirects to a file on storage.test."""

    def __init__(self, hops: int = 1, final: str | None = None) -> None:
        self.hops = hops
        self.final = final
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "api.test":
            if request.url.path == "/api/view":
                return httpx.Response(302, headers={
                    "Location": "https://storage.test/o/1?X-Goog-Signature=sig",
                    "Set-Cookie": "session=api-cookie; Path=/"})
            return httpx.Response(200, json={"ok": True}, headers={"Set-Cookie": "s=1"})
        hop = int(request.url.path.rsplit("/", 1)[-1])
        if hop < self.hops:
            location = self.final if self.final and hop == self.hops - 1 else \
                f"/o/{hop + 1}?X-Goog-Signature=sig{hop + 1}"
            return httpx.Response(307, headers={"Location": location,
                                                "Set-Cookie": "gcs=1; Path=/"})
        return httpx.Response(200, content=b"file bytes")


def mocked(recorder: Recorder, sleeps: Sleeps | None = None) -> Transport:
    return Transport("https://api.test/", api_key=KEY, sleep=sleeps or Sleeps(),
                     httpx_transport=httpx.MockTransport(recorder))


async def test_storage_hops_carry_no_credentials_or_client_headers() -> None:
    recorder = Recorder(hops=3)
    async with mocked(recorder) as http:
        await http.request("GET", "/api/queue")
        assert await http.download("/api/view", {"filename": "a.png"}) == b"file bytes"
    api = [r for r in recorder.requests if r.url.host == "api.test"]
    storage = [r for r in recorder.requests if r.url.host == "storage.test"]
    assert len(api) == 2 and len(storage) == 3
    for request in api:
        assert request.headers["X-API-Key"] == KEY
        assert request.headers["User-Agent"].startswith("comfy-nb/")
        assert "cookie" not in request.headers
    for request in storage:
        assert "x-api-key" not in request.headers and "authorization" not in request.headers
        assert "cookie" not in request.headers
        assert not request.headers.get("user-agent", "").startswith("comfy-nb")
        assert KEY not in str(request.url) and "filename" not in str(request.url)
    assert str(storage[0].url) == "https://storage.test/o/1?X-Goog-Signature=sig"


async def test_too_many_redirects_and_odd_schemes_are_refused(tmp_path: Path) -> None:
    sleeps = Sleeps()
    async with mocked(Recorder(hops=6), sleeps) as http:
        with pytest.raises(TransportError, match="more than 5 redirects") as caught:
            await http.download("/api/view", {"filename": "a.png"}, to=tmp_path / "a.png")
        assert_clean(caught.value)
    for final in ("file:///etc/passwd", "ftp://storage.test/o/9"):
        async with mocked(Recorder(hops=2, final=final), sleeps) as http:
            with pytest.raises(TransportError, match="non-http") as caught:
                await http.download("/api/view", {"filename": "a.png"})
            assert final not in str(caught.value)
    assert sleeps == [] and list(tmp_path.iterdir()) == []


async def test_short_body_and_echoing_storage_errors(tmp_path: Path) -> None:
    """Content-Length is checked even where httpx would not notice, and a storage error body
    that echoes the signed request (GCS's ``CanonicalRequest`` does) stays out of the message."""
    signed = "https://storage.test/o/1?X-Goog-Signature=sig"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "api.test":
            return httpx.Response(302, headers={"Location": signed})
        if request.url.params.get("X-Goog-Signature") == "sig":
            return httpx.Response(200, content=b"short", headers={"Content-Length": "100"})
        return httpx.Response(403, content=(
            "<Error><Code>SignatureDoesNotMatch</Code><CanonicalRequest>GET " + signed +
            "</CanonicalRequest></Error>").encode(), headers={"Content-Type": "application/xml"})

    sleeps = Sleeps()
    async with Transport("https://api.test", api_key=KEY, sleep=sleeps,
                         httpx_transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(TransportError, match="cut short after 5 of 100 bytes") as short:
            await http.download("/api/view", {"filename": "a.png"}, to=tmp_path / "a.png")
        assert len(sleeps) == 3 and list(tmp_path.iterdir()) == []
        assert_clean(short.value)
        signed = "https://storage.test/o/1?X-Goog-Signature=other"  # the API now redirects here
        with pytest.raises(ComfyError, match="SignatureDoesNotMatch") as refused:
            await http.download("/api/view", {"filename": "a.png"})
    assert "storage.test" not in str(refused.value) and "X-Goog" not in str(refused.value)


def test_a_malformed_base_url_is_invalid_url() -> None:
    for base_url in ("ftp://api.test", "https://user:pw@api.test", "https://api.test/?a=1",
                     "http://127.0.0.1:abc"):
        with pytest.raises(InvalidURL) as caught:
            Transport(base_url)
        assert isinstance(caught.value, ValueError) and "pw" not in str(caught.value)


async def test_paths_must_stay_on_the_api_server() -> None:
    recorder = Recorder()
    async with mocked(recorder) as http:
        for path in ("https://elsewhere.test/x", "//elsewhere.test/x", "api/queue",
                     "/api/view?filename=a.png"):
            with pytest.raises(ValueError):
                await http.request("GET", path)
    assert recorder.requests == []


# -- key hygiene --------------------------------------------------------------------------------


async def test_repr_and_logs_never_show_the_key(
        cloud: RunningEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="comfy_nb")
    sleeps = Sleeps()
    http = transport(cloud, sleeps)
    assert KEY not in repr(http) and repr(http).startswith(f"<Transport {cloud.url}")
    assert http.base_url == cloud.url
    async with http:
        file = await run_workflow(http, cloud)
        cloud.faults.update(http_error_count=1, http_error_status=503)
        await http.download("/api/view", file)
        cloud.faults.update(truncate_view=True)
        with pytest.raises(TransportError):
            await http.download("/api/view", file)
    assert caplog.records and "retry" in caplog.text
    for text in (caplog.text, repr(http)):
        assert KEY not in text and "X-Goog" not in text and cloud.storage_url not in text
        assert "filename=" not in text


async def test_httpx_request_logs_never_show_a_signed_url(
        cloud: RunningEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    async with transport(cloud, Sleeps()) as http:
        file = await run_workflow(http, cloud)
        assert await http.download("/api/view", file) == on_disk(cloud, file)
    storage_lines = [r.getMessage() for r in caplog.records
                     if r.name == "httpx" and cloud.storage_url in r.getMessage()]
    assert storage_lines and all("?[redacted]" in line for line in storage_lines)
    assert "X-Goog" not in caplog.text
    assert "filename=" in caplog.text  # queries without a signature are left alone
