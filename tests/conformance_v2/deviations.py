"""Every deliberate difference between the v2 emulator (and the replay of the recordings) and the
recorded comfy-api-proxy 0.1.6 over ComfyUI 0.3.64, in one place.

Each entry says what differs and why. The comparisons in ``_replay.py`` and the tests relax a
check only through a name defined here, so ``git grep`` from an entry finds every check it
relaxes. Append-only, one ``NAME = deviation(...)`` line each.
"""

from __future__ import annotations

DEVIATIONS: dict[str, str] = {}


def deviation(key: str, text: str) -> str:
    """Register a deliberate difference and return its key."""
    if key in DEVIATIONS:
        raise ValueError(f"deviation {key!r} is declared twice")
    DEVIATIONS[key] = text
    return key


# Identifiers, clocks and counters: different on every server and every run (the recordings'
# README lists them as volatile).
IDS = deviation("ids", "Job ids, uploaded-asset ids and signed output ids are minted by the server that answers; the replay maps each recorded id to the one the server gave at the same place and compares in the recorded id space.")
TIMES = deviation("times", "created_at, expires_at, url_expires_at and the Date header are the answering server's clock; compared as ISO-8601 timestamps.")
FILE_COUNTERS = deviation("file-counters", "Output file counters (invert_00005_.png) count the answering server's earlier saves; compared with the counter masked.")
GENERATED_BYTES = deviation("generated-bytes", "Bytes of generated outputs (stand-in pixels, this machine's encoders) and so their sizes may differ; uploaded bytes and ranges are compared exactly.")
STREAM_TIMING = deviation("stream-timing", "How many progress and preview frames a stream carries depends on timing (0.5 s throttle); every frame's shape is compared, the number is not, and output frames may come before or after the final status (both recorded).")
POLL_TIMING = deviation("poll-timing", "A poll recorded in a passing state (queued, running) is repeated until the job is in that state, and a stream recorded opening on a running or finished job is opened once the job is so: jobs run at the emulator's speed (node_delay and step_delay slow them down).")
HEALTH_UPSTREAM = deviation("health-upstream", "GET /api/v2/health names the server's upstream; the v2 emulator runs its own jobs and names itself, the proxy in the tests names the local emulator behind it.")
JOB_LIST_CONTENT = deviation("job-list-content", "GET /api/v2/jobs lists the jobs of the answering server (the recorded proxy had run the earlier scenarios); the replay runs two jobs first and compares each listed job's shape, the status filter, the limit and `truncated`.")
ERROR_ORDER = deviation("error-order", "ComfyUI validates a node's inputs in the iteration order of a Python set of their names, which changes with the hash seed between server starts (recorded: invalid_input_type of height before value_smaller_than_min of width; the emulator, whose order is fixed, gives the other); node_errors are compared with each node's errors sorted.")
STALL_LENGTH = deviation("stall-length", "The recorded silences last the proxy's 15 s heartbeat; the replay shortens them (sse_stall, sse_heartbeat) so the race takes a second, the shape of the stream is the same.")
CANCEL_NOOP = deviation("cancel-noop", "Cancel on the proxy over ComfyUI 0.3.64 never cancels (10, 22): the v2 emulator cancels for real by default (canceling, then canceled) and reproduces the recorded no-op with the cancel_noop fault, which the replay of 10 and 22 turns on.")
RACE_FAULTS = deviation("race-faults", "The recorded races (90: a just-finished job read as expired; 91: a stream that misses the end of a job) are timing accidents on the proxy; the v2 emulator produces them on purpose with the expired_race and sse_stall faults, which the replay of 90 and 91 turns on; the proxy tier cannot force them and leaves 90 and 91 out, and, as the proxy loses the expired race by accident too, a poll recorded in another state that reads `expired` reads again for up to 2 s.")
