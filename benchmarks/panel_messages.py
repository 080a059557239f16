"""Widget traffic of the progress panel during a 1000-step job on the emulator.

The panel (comfy_nb.notebook.progress.WidgetPanel) is compared with a naive panel measured in
the same run: the same widgets, updated on every event the job gets (what a callback-driven
panel does). Comm messages are counted with a recording comm, as ipywidgets' own tests do.

    python benchmarks/panel_messages.py [--steps 1000] [--step-delay 0.005]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import comm

import comfy_nb
from comfy_nb.emulator import serve
from comfy_nb.notebook import progress
from comfy_nb.notebook.progress import WidgetPanel, follow, status_html
from comfy_nb.workflows import bundled

SENT: list[tuple[float, str]] = []


class RecordingComm:
    """A comm that notes the time and target of every message instead of sending it."""

    count = 0

    def __init__(self, **kwargs: Any) -> None:
        RecordingComm.count += 1
        self.comm_id = f"comm-{RecordingComm.count}"
        self.kernel = "Truthy"

    def open(self, *args: Any, **kwargs: Any) -> None: ...

    def on_msg(self, *args: Any, **kwargs: Any) -> None: ...

    def close(self, *args: Any, **kwargs: Any) -> None: ...

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        if isinstance(data, dict) and data.get("method") == "update":
            SENT.append((time.monotonic(), self.comm_id))


class _Handle:
    def update(self, obj: Any, **kwargs: Any) -> None: ...


def busiest_second(times: list[float]) -> int:
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def measure(client: comfy_nb.Client, steps: int, naive: bool) -> dict[str, float]:
    SENT.clear()
    # a new seed each time: the server would otherwise serve the whole graph from its cache
    job = client.submit(bundled("txt2img"), overrides={"KSampler.steps": steps},
                        seed="random")
    panel = WidgetPanel(job)
    panel.show()
    start = time.monotonic()
    if naive:
        def on_event(event: Any) -> None:  # every event redraws, previews included
            panel.status.value = status_html(job.id, job.progress(), job.workflow)
            if isinstance(event, comfy_nb.client._events.Preview):
                panel.preview.value = event.data

        job.on(on_event)
        job.wait()
        time.sleep(0.2)  # let the last callbacks run
    else:
        follow(job, panel)
    seconds = time.monotonic() - start
    preview_id = panel.preview.comm.comm_id
    events = sum(1 for _ in job)
    times = [moment for moment, _ in SENT]
    return {"events": events, "messages": len(SENT), "seconds": seconds,
            "busiest": busiest_second(times),
            "previews": sum(1 for _, target in SENT if target == preview_id)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--step-delay", type=float, default=0.005)
    args = parser.parse_args()
    comm.create_comm = lambda **kwargs: RecordingComm(**kwargs)
    progress._display = lambda obj, **kwargs: _Handle()
    with serve(step_delay=args.step_delay) as emulator, comfy_nb.connect(emulator.url) as client:
        naive = measure(client, args.steps, naive=True)
        ours = measure(client, args.steps, naive=False)
    print(f"{args.steps}-step job, {ours['events']:.0f} events in {ours['seconds']:.1f} s")
    print(f"{'panel':<22}{'messages':>10}{'msg/s avg':>11}{'busiest 1 s':>13}{'previews':>10}")
    for name, row in (("update on every event", naive), ("comfy_nb WidgetPanel", ours)):
        print(f"{name:<22}{row['messages']:>10.0f}{row['messages'] / row['seconds']:>11.1f}"
              f"{row['busiest']:>13.0f}{row['previews']:>10.0f}")
    print(f"ratio (comfy_nb / every event): {ours['messages'] / naive['messages']:.4f} of the "
          f"messages; busiest second {ours['busiest']:.0f} vs {naive['busiest']:.0f} "
          f"(limit {progress.MAX_WIDGET_MESSAGES})")


if __name__ == "__main__":
    main()
