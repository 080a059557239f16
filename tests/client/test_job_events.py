"""A job's event history starts with Queued (the server's queue number) and is replayed in
order to listeners that arrive late."""

from __future__ import annotations

from comfy_nb import connect
from comfy_nb.emulator import serve
from comfy_nb.events import Finished, Queued, Started, Succeeded

WORKFLOW = {
    "1": {"class_type": "EmptyImage",
          "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 7}},
    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
}


def test_queued_comes_first_with_the_server_number() -> None:
    with serve(step_delay=0.0) as server, connect(server.url) as client:
        first = client.submit(WORKFLOW)
        first.wait(10)
        second = client.submit({**WORKFLOW, "1": {**WORKFLOW["1"], "inputs": {
            **WORKFLOW["1"]["inputs"], "color": 8}}})
        second.wait(10)
        events = list(second)  # a finished job replays its history
    assert isinstance(events[0], Queued)
    assert events[0].number == first.number + 1 == second.number
    kinds = [type(e) for e in events]
    assert kinds.index(Started) < kinds.index(Succeeded) < kinds.index(Finished)


def test_queue_position_on_both_dialects() -> None:
    for dialect in ("local", "cloud"):
        with serve(dialect=dialect, node_delay=0.3, tier="standard") as server, \
                connect(server.url, api_key=server.api_key) as client:
            jobs = [client.submit({**WORKFLOW, "1": {**WORKFLOW["1"], "inputs": {
                **WORKFLOW["1"]["inputs"], "color": n}}}) for n in range(3)]
            jobs[2].refresh()
            # behind the running job (0) and the other pending one (1); 3 if none started yet
            assert jobs[2].position in (2, 3), dialect
            for job in jobs:
                job.wait(20)
            assert jobs[2].position == 0
