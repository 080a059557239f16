"""Widget traffic of the progress panel during a 1000-step job on the emulator.

The panel (comfy_nb.notebook.progress.WidgetPanel) is compared with a naive panel measured in
the same run: the same widgets, updated on every event the job gets (what a callback-driven
panel does). Comm messages are counted with the tests' recording comm
(tests/notebook/comms.py), as ipywidgets' own tests do.

    python benchmarks/panel_messages.py [--steps 1000] [--step-delay 0.005]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import comm

import comfy_nb
from comfy_nb.emulator import serve
from comfy_nb.notebook import progress
from comfy_nb.notebook.progress import WidgetPanel, follow, status_html
from comfy_nb.workflows import bundled

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/
from tests.notebook.comms import FakeHandle, RecordingComm, most_in_one_second, update_times


def measure(client: comfy_nb.Client, steps: int, naive: bool) -> dict[str, float]:
    RecordingComm.log.clear()
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
    times = update_times(RecordingComm.log)
    return {"events": events, "messages": len(times), "seconds": seconds,
            "busiest": most_in_one_second(times),
            "previews": len(update_times(RecordingComm.log, preview_id))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--step-delay", type=float, default=0.005)
    args = parser.parse_args()
    comm.create_comm = RecordingComm
    progress._display = lambda obj, **kwargs: FakeHandle(obj)
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
