"""Replaying a recorded v2 scenario against a live server (the v2 emulator, or comfy-api-proxy in
front of the local emulator) and comparing every answer with the recorded one.

A :class:`Replay` sends each recorded request in order, with the recorded ids it learnt
replaced by the live ones, and turns each answer into an *observation* in the recorded id space:
ids mapped back, timestamps and file counters masked (``deviations.IDS``, ``TIMES``,
``FILE_COUNTERS``). :func:`compare` then checks an observation against the recording;
``observation_shape`` is what the proxy tier compares between two servers.

What a comparison relaxes is named in ``deviations.py``, never decided here alone.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.conformance._replay import shape
from tests.fixture_paths import COMFY_API_V2, require

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OUTPUT_ID = re.compile(r"^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
COUNTER = re.compile(r"_\d{5}_\.")
TERMINAL = {"succeeded", "failed", "canceled", "expired"}
RANK = {"queued": 0, "running": 1, "canceling": 1}
WRONG_TOKEN = "not-the-token"
# deviations.RACE_FAULTS: the proxy reads a job finishing during a poll as "expired" for a
# moment; a poll recorded in another state reads again for this long
EXPIRED_RACE_RETRY = 2.0
COMPARED_HEADERS = ("Content-Type", "Accept-Ranges", "Retry-After")


class RaceWindow:
    """``deviations.RACE_FAULTS``: an ``expired`` read where another status was recorded is the
    proxy's race for :data:`EXPIRED_RACE_RETRY` seconds from the first such read (a job that
    runs long finishes well after its polling began)."""

    def __init__(self) -> None:
        self.since: float | None = None

    def racing(self, status: str | None, wanted: str) -> bool:
        if status != "expired" or wanted == "expired":
            return False
        now = time.monotonic()
        self.since = now if self.since is None else self.since
        return now - self.since < EXPIRED_RACE_RETRY


def scenarios() -> list[str]:
    return sorted(p.name for p in require(COMFY_API_V2).iterdir() if p.is_dir())


def exchanges(scenario: str) -> list[dict[str, Any]]:
    folder = COMFY_API_V2 / scenario
    return [json.loads(p.read_text("utf-8")) for p in sorted(Path(folder).glob("*.json"))]


def looks_like_id(text: str) -> bool:
    return bool(UUID.fullmatch(text) or OUTPUT_ID.match(text))


def masked(value: Any) -> Any:
    """``value`` with timestamps and file counters masked (ids are mapped separately)."""
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str):
        if ISO_TIME.match(value):
            return "<time>"
        return COUNTER.sub("_NNNNN_.", value)
    return value


def sorted_node_errors(body: Any) -> Any:
    """``deviations.ERROR_ORDER``: each node's validation errors in a fixed order."""
    try:
        node_errors = body["error"]["details"]["node_errors"]
    except (KeyError, TypeError):
        return body
    for entry in node_errors.values():
        entry["errors"] = sorted(entry["errors"], key=lambda e: json.dumps(e, sort_keys=True))
    return body


@dataclass
class Observation:
    """One answer in the recorded id space."""

    seq: int
    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: Any = None  # parsed JSON, or text
    size: int | None = None  # binary bodies: their length
    frames: list[dict[str, Any]] = field(default_factory=list)  # SSE: {"event", "data"} | comment


class Replay:
    """Sends a scenario's requests to ``base_url`` and records what came back."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60.0)
        self.token = token
        self.ids: dict[str, str] = {}  # recorded -> live
        self.background: list[tuple[threading.Thread, dict[str, Any]]] = []
        self.results: dict[int, Observation] = {}
        self.errors: list[BaseException] = []

    def close(self) -> None:
        for thread, _ in self.background:
            thread.join(120)
        self.http.close()

    # -- ids -------------------------------------------------------------------------------

    def live(self, text: str) -> str:
        for recorded, live in self.ids.items():
            text = text.replace(recorded, live)
        return text

    def to_live(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.to_live(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.to_live(v) for v in value]
        return self.live(value) if isinstance(value, str) else value

    def to_recorded(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.to_recorded(k): self.to_recorded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.to_recorded(v) for v in value]
        if isinstance(value, str):
            for recorded, live in self.ids.items():
                value = value.replace(live, recorded)
        return value

    def learn(self, recorded: Any, live: Any) -> None:
        """Map each recorded id to the live value at the same place."""
        if isinstance(recorded, dict) and isinstance(live, dict):
            for key in recorded.keys() & live.keys():
                self.learn(recorded[key], live[key])
        elif isinstance(recorded, list) and isinstance(live, list):
            for pair in zip(recorded, live, strict=False):
                self.learn(*pair)
        elif (isinstance(recorded, str) and isinstance(live, str) and looks_like_id(recorded)
              and recorded not in self.ids and recorded != live):
            self.ids[recorded] = live

    # -- requests --------------------------------------------------------------------------

    def headers_for(self, exchange: dict[str, Any]) -> dict[str, str]:
        recorded = exchange["request"]["headers"]
        kept = {k: v for k, v in recorded.items()
                if k in ("Host", "Idempotency-Key", "Range", "Origin", "Sec-Fetch-Site",
                         "Last-Event-ID", "User-Agent", "Accept")}
        authorization = recorded.get("Authorization")
        if authorization is not None:
            scheme = authorization.split(" ", 1)[0]
            wrong = (exchange["response"].get("body") or {}).get("json", {})
            invalid = (isinstance(wrong, dict)
                       and (wrong.get("error") or {}).get("message") == "Invalid token.")
            secret = WRONG_TOKEN if invalid or self.token is None else self.token
            kept["Authorization"] = (f"Bearer {secret}" if scheme == "Bearer"
                                     else f"{scheme} dXNlcjpwYXNz")
        return {k: self.live(v) for k, v in kept.items()}

    def request_kwargs(self, exchange: dict[str, Any]) -> dict[str, Any]:
        request = exchange["request"]
        kwargs: dict[str, Any] = {"headers": self.headers_for(exchange),
                                  "params": [(k, self.live(v)) for k, v in request["query"]]}
        body = request.get("body")
        if body is None:
            return kwargs
        if body["encoding"] == "json":
            kwargs["content"] = json.dumps(self.to_live(body["json"])).encode()
            kwargs["headers"]["Content-Type"] = "application/json"
        elif body["encoding"] == "base64":
            kwargs["content"] = base64.b64decode(body["base64"])
            kwargs["headers"]["Content-Type"] = request["headers"].get("Content-Type", "")
        elif body["encoding"] == "text":
            kwargs["content"] = body["text"].encode()
        elif body["encoding"] == "multipart":
            data: dict[str, list[str]] = {}
            files: list[tuple[str, tuple[str, bytes, str]]] = []
            for part in body["parts"]:
                if part.get("filename") is not None:
                    files.append((part["name"], (part["filename"],
                                                 base64.b64decode(part["base64"]),
                                                 part["content_type"])))
                else:
                    data.setdefault(part["name"], []).append(part["value"])
            kwargs["data"] = data
            kwargs["files"] = files
        return kwargs

    def send(self, exchange: dict[str, Any]) -> httpx.Response:
        request = exchange["request"]
        return self.http.request(request["method"], self.live(request["path"]),
                                 **self.request_kwargs(exchange))

    # -- observing -------------------------------------------------------------------------

    def observe(self, exchange: dict[str, Any], response: httpx.Response) -> Observation:
        recorded = exchange["response"]
        headers = {name: self.to_recorded(response.headers[name])
                   for name in (*COMPARED_HEADERS, "Content-Range", "Content-Length")
                   if name in response.headers}
        obs = Observation(exchange["seq"], exchange["request"]["method"],
                          exchange["request"]["path"], response.status_code, headers)
        kind = (recorded.get("body") or {}).get("encoding")
        if "json" in response.headers.get("Content-Type", ""):
            live_body = response.json()
            if kind == "json":
                self.learn(recorded["body"]["json"], live_body)
            obs.body = masked(self.to_recorded(live_body))
        elif response.headers.get("Content-Type", "").startswith("text/plain"):
            obs.body = response.text
        else:
            obs.size = len(response.content)
        return obs

    def job_status(self, recorded_job: str) -> str | None:
        answer = self.http.get(f"/api/v2/jobs/{self.live(recorded_job)}",
                               headers=self.auth_only())
        return answer.json().get("status") if answer.status_code == 200 else None

    def auth_only(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def wait_for(self, recorded_job: str, wanted: str, timeout: float = 60) -> None:
        """``deviations.POLL_TIMING``: until the job is ``wanted`` (fails if it went past)."""
        deadline = time.monotonic() + timeout
        race = RaceWindow()
        status = self.job_status(recorded_job)
        while status != wanted and time.monotonic() < deadline:
            racing = race.racing(status, wanted)
            if not racing and (status in TERMINAL
                               or RANK.get(status or "", -1) > RANK.get(wanted, 9)):
                break
            time.sleep(0.01)
            status = self.job_status(recorded_job)
        assert status == wanted, f"job {recorded_job} is {status}, recorded {wanted}"

    def poll(self, exchange: dict[str, Any]) -> tuple[httpx.Response, Observation]:
        """A job poll, repeated while the job has not reached the recorded status."""
        wanted = exchange["response"]["body"]["json"]["status"]
        deadline = time.monotonic() + 60
        race = RaceWindow()
        while True:
            response = self.send(exchange)
            status = response.json().get("status") if response.status_code == 200 else None
            passing = (status not in TERMINAL and status != wanted
                       and RANK.get(status or "", 9) <= RANK.get(wanted, 9))
            passing = passing or race.racing(status, wanted)  # deviations.RACE_FAULTS
            if not passing or time.monotonic() > deadline:
                return response, self.observe(exchange, response)
            time.sleep(0.01)

    def stream(self, exchange: dict[str, Any], started: threading.Event | None = None,
               frames_then: int = 0) -> Observation:
        """An event stream, read to its end (or, where the client left, to the recorded number
        of frames); ``started`` is set once ``frames_then`` frames have come."""
        recorded = exchange["response"]
        events = [e for e in recorded["sse_events"] if "event" in e]
        job = UUID.search(exchange["request"]["path"])
        if job is not None and events and events[0]["event"] == "status":
            self.wait_for(job.group(0), events[0]["data"]["status"])
        keep_reading = (None if recorded.get("stream_end") == "upstream_eof" else len(events))
        request = exchange["request"]
        frames: list[dict[str, Any]] = []
        with self.http.stream(request["method"], self.live(request["path"]),
                              **self.request_kwargs(exchange)) as response:
            obs = Observation(exchange["seq"], request["method"], request["path"],
                              response.status_code,
                              {k: response.headers[k] for k in COMPARED_HEADERS
                               if k in response.headers})
            if response.status_code != 200:
                response.read()
                obs.body = masked(self.to_recorded(response.json()))
                return obs
            for item in sse_frames(response.iter_bytes()):
                if "data" in item:
                    if item["event"] == "output":
                        recorded_outputs = [e["data"] for e in events if e["event"] == "output"]
                        index = sum(1 for f in frames if f.get("event") == "output")
                        if index < len(recorded_outputs):
                            self.learn(recorded_outputs[index], item["data"])
                    item = {**item, "data": masked(self.to_recorded(item["data"]))}
                frames.append(item)
                data_frames = sum(1 for f in frames if "data" in f)
                if started is not None and data_frames >= frames_then:
                    started.set()
                if keep_reading is not None and data_frames >= keep_reading:
                    break
        obs.frames = frames
        return obs

    def run(self, exchange: dict[str, Any], later: list[dict[str, Any]]) -> None:
        """Replay one exchange (in the background when the recording shows the next request
        starting before this one ended) and keep its observation."""
        if "sse_events" in exchange["response"] and _overlaps(exchange, later):
            # go on once the stream has as many frames as it had when the next request started
            started = threading.Event()
            wanted = _frames_before(exchange, later[0])
            thread = threading.Thread(target=self._in_background,
                                      args=(exchange, started, wanted))
            thread.start()
            self.background.append((thread, exchange))
            started.wait(60)
            return
        self._now(exchange)

    def _in_background(self, exchange: dict[str, Any], started: threading.Event,
                       frames: int) -> None:
        try:
            self.results[exchange["seq"]] = self.stream(exchange, started, frames)
        except BaseException as exc:  # reported by finish()
            self.errors.append(exc)
        finally:
            started.set()

    def _now(self, exchange: dict[str, Any]) -> None:
        recorded = exchange["response"]
        request = exchange["request"]
        if "sse_events" in recorded:
            self.results[exchange["seq"]] = self.stream(exchange)
            return
        body = (recorded.get("body") or {}).get("json")
        is_poll = (request["method"] == "GET" and UUID.fullmatch(
            request["path"].rsplit("/", 1)[-1] or "") is not None
            and "/jobs/" in request["path"] and isinstance(body, dict) and "status" in body)
        if is_poll:
            _, obs = self.poll(exchange)
        else:
            obs = self.observe(exchange, self.send(exchange))
        self.results[exchange["seq"]] = obs

    def finish(self) -> list[Observation]:
        for thread, _ in self.background:
            thread.join(120)
        if self.errors:
            raise self.errors[0]
        return [self.results[seq] for seq in sorted(self.results)]


def _offset(exchange: dict[str, Any], then: dict[str, Any]) -> float:
    """Seconds from the start of ``exchange`` to the start of ``then``."""
    return (datetime.fromisoformat(then["started_at"]).timestamp()
            - datetime.fromisoformat(exchange["started_at"]).timestamp())


def _overlaps(exchange: dict[str, Any], later: list[dict[str, Any]]) -> bool:
    return bool(later) and _offset(exchange, later[0]) < exchange["duration_ms"] / 1000


def _frames_before(exchange: dict[str, Any], then: dict[str, Any]) -> int:
    """How many data frames the recorded stream had when ``then`` started."""
    offset = _offset(exchange, then)
    return sum(1 for e in exchange["response"]["sse_events"] if "event" in e and e["t"] < offset)


def sse_frames(chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """Parsed SSE frames: ``{"event", "data"}`` (data as JSON) or ``{"comment"}``."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while b"\n\n" in buffer:
            raw, buffer = buffer.split(b"\n\n", 1)
            lines = raw.decode("utf-8").split("\n")
            if all(line.startswith(":") for line in lines):
                yield {"comment": lines[0][1:].strip()}
                continue
            fields = dict(line.split(": ", 1) for line in lines if ": " in line)
            parsed = {"event": fields.get("event"), "data": json.loads(fields.get("data", "null"))}
            if "id" in fields:
                parsed["id"] = fields["id"]
            yield parsed


def replay(base_url: str, scenario: str, token: str | None,
           prelude: tuple[str, ...] = ()) -> list[Observation]:
    """Run ``prelude`` scenarios (unobserved), then ``scenario``; its observations."""
    for earlier in prelude:
        replay(base_url, earlier, token)
    runner = Replay(base_url, token)
    try:
        recorded = exchanges(scenario)
        for index, exchange in enumerate(recorded):
            runner.run(exchange, recorded[index + 1:])
        return runner.finish()
    finally:
        runner.close()


# -- comparing ------------------------------------------------------------------------------


def recorded_body(exchange: dict[str, Any]) -> Any:
    body = exchange["response"].get("body")
    if body is None:
        return None
    if body["encoding"] == "json":
        return masked(body["json"])
    if body["encoding"] == "text":
        return body["text"]
    return None


def compare(exchange: dict[str, Any], obs: Observation) -> None:
    """``obs`` answers as ``exchange`` was answered (relaxed only as ``deviations`` says)."""
    where = f"{exchange['scenario']}/{exchange['seq']:03d} {obs.method} {obs.path}"
    recorded = exchange["response"]
    assert obs.status == recorded["status"], (
        f"{where}: status {obs.status}, recorded {recorded['status']}")
    for name in COMPARED_HEADERS:
        wanted = recorded["headers"].get(name)
        assert obs.headers.get(name) == wanted, (
            f"{where}: {name} {obs.headers.get(name)!r}, recorded {wanted!r}")
    if "sse_events" in recorded:
        compare_stream(where, recorded, obs)
        return
    body = recorded.get("body")
    if body is not None and body["encoding"] == "base64":
        compare_content(where, exchange, obs)
        return
    expected = recorded_body(exchange)
    actual = obs.body
    if isinstance(expected, dict) and "jobs" in expected:
        compare_job_list(where, exchange, actual)  # deviations.JOB_LIST_CONTENT
        return
    if obs.path == "/api/v2/health":  # deviations.HEALTH_UPSTREAM
        assert shape(actual) == shape(expected), where
        return
    expected, actual = sorted_node_errors(expected), sorted_node_errors(actual)  # ERROR_ORDER
    assert actual == expected, f"{where}:\n live     {actual}\n recorded {expected}"


def compare_content(where: str, exchange: dict[str, Any], obs: Observation) -> None:
    recorded = exchange["response"]
    content_range = recorded["headers"].get("Content-Range")
    uploaded = UUID.search(exchange["request"]["path"]) is not None
    if content_range is not None:  # the range asked for, of whatever the whole is
        assert obs.headers.get("Content-Length") == recorded["headers"]["Content-Length"], where
        first = content_range.rsplit("/", 1)[0]
        assert (obs.headers.get("Content-Range") or "").rsplit("/", 1)[0] == first, where
    if uploaded or content_range is not None:  # uploaded bytes come back as they were sent
        assert obs.size == recorded["body"]["size"], where
        if uploaded and content_range is not None:
            assert obs.headers.get("Content-Range") == content_range, where
    else:  # deviations.GENERATED_BYTES
        assert obs.size, f"{where}: empty output"


def compare_job_list(where: str, exchange: dict[str, Any], actual: Any) -> None:
    expected = recorded_body(exchange)
    assert isinstance(actual, dict) and set(actual) == set(expected), where
    assert actual["truncated"] == expected["truncated"], where
    query = dict(exchange["request"]["query"])
    wanted = set(query["status"].split(",")) if "status" in query else None
    limit = int(query.get("limit", 50))
    assert len(actual["jobs"]) <= limit, where
    assert bool(actual["jobs"]) == bool(expected["jobs"]), f"{where}: {actual['jobs']}"
    shapes = [shape(job) for job in expected["jobs"]]
    for job in actual["jobs"]:
        assert shape(job) in shapes, f"{where}: unrecorded job shape {shape(job)}"
        assert wanted is None or job["status"] in wanted, where


def compare_stream(where: str, recorded: dict[str, Any], obs: Observation) -> None:
    """deviations.STREAM_TIMING: first frame, final status, outputs and every frame's shape."""
    expected = [{"event": e["event"], "data": masked(e["data"])}
                for e in recorded["sse_events"] if "event" in e]
    frames = [f for f in obs.frames if "data" in f]
    assert all("id" not in f for f in frames), f"{where}: SSE ids are never sent"
    assert frames and frames[0] == expected[0], (
        f"{where}: first {frames[:1]}, recorded {expected[0]}")
    types = {e["event"] for e in expected}
    live_types = {f["event"] for f in frames}
    if recorded.get("stream_end") == "upstream_eof":
        assert types - {"progress", "preview"} <= live_types, f"{where}: {live_types} vs {types}"
        assert live_types <= types | {"progress"}, f"{where}: {live_types} vs {types}"
        last_status = [f for f in frames if f["event"] == "status"][-1]
        recorded_last = [e for e in expected if e["event"] == "status"][-1]
        assert last_status == recorded_last, f"{where}: final {last_status} vs {recorded_last}"
        outputs = [f["data"] for f in frames if f["event"] == "output"]
        assert outputs == [e["data"] for e in expected if e["event"] == "output"], where
        tail = frames[frames.index(last_status):]
        assert all(f["event"] in ("status", "output") for f in tail), f"{where}: {tail}"
        raw = recorded["sse_events"]
        stalled = any("comment" in e and any(later.get("event") == "status"
                                             for later in raw[i:]) for i, e in enumerate(raw))
        if stalled:  # deviations.STALL_LENGTH: the silence ends with a keepalive, then the end
            index = obs.frames.index(last_status)
            assert any("comment" in f for f in obs.frames[:index]), f"{where}: no keepalive"
    recorded_shapes = frame_shapes()
    for frame in frames:
        assert shape(frame["data"]) in recorded_shapes[frame["event"]], (
            f"{where}: {frame['event']} frame {frame['data']} has a shape never recorded")


@functools.lru_cache(maxsize=1)
def frame_shapes() -> dict[str, list[Any]]:
    """Every shape each event type's data has anywhere in the recordings."""
    found: dict[str, list[Any]] = {}
    for scenario in scenarios():
        for exchange in exchanges(scenario):
            for event in exchange["response"].get("sse_events") or []:
                if "event" in event and shape(event["data"]) not in found.setdefault(
                        event["event"], []):
                    found[event["event"]].append(shape(event["data"]))
    return found


def observation_shape(obs: Observation) -> Any:
    """What two servers answering the same scenario must share: status, compared headers,
    the shape of the body, and the event types and frame shapes of a stream."""
    return {
        "status": obs.status,
        "headers": {k: v for k, v in obs.headers.items() if k in COMPARED_HEADERS},
        "body": shape(sorted_node_errors(obs.body)),  # deviations.ERROR_ORDER
        "events": sorted({(f.get("event") or "comment") for f in obs.frames} - {"comment"}),
        "terminal": [f["data"] for f in obs.frames if f.get("event") == "status"][-1:],
    }
