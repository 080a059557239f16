"""comfy_nb.errors and comfy_nb.events: the public homes of the error tree and the event
classes. The tree drawn in the errors module's docstring is the real one."""

from __future__ import annotations

import inspect
import re

import comfy_nb
from comfy_nb import errors, events
from comfy_nb.client._frames import decode


def drawn_tree() -> dict[str, str | None]:
    """Each class drawn in ``comfy_nb.errors.__doc__`` -> the class drawn as its parent."""
    assert errors.__doc__ is not None
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        found = re.match(r"^ {4}((?:[│ ] {3}|[├└]── )*)([A-Z]\w+)\b", line)
        if found is None or line.strip().startswith("("):
            continue
        depth = len(found.group(1)) // 4
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[found.group(2)] = stack[-1][1] if stack else None
        stack.append((depth, found.group(2)))
    return parents


def test_the_drawing_is_the_tree() -> None:
    drawn = drawn_tree()
    assert drawn["ComfyError"] is None and drawn["DownloadTimeout"] == "TransportError"
    classes = {name: value for name, value in vars(errors).items()
               if inspect.isclass(value) and issubclass(value, errors.ComfyError)}
    assert set(drawn) == set(classes)  # every error drawn, nothing drawn that is not one
    for name, parent in drawn.items():
        if parent is not None:
            assert classes[parent] in classes[name].__bases__, name


def test_every_error_the_package_exports_is_the_public_one() -> None:
    for name in errors.__all__:
        if hasattr(comfy_nb, name):
            assert getattr(comfy_nb, name) is getattr(errors, name), name
    assert comfy_nb.errors is errors and "errors" in comfy_nb.__all__


def test_decoded_events_are_the_public_classes() -> None:
    event = decode('{"type": "progress", "data": {"prompt_id": "p", "node": "3", "value": 1, '
                   '"max": 2}}')
    assert type(event) is events.Progress and isinstance(event, events.Event)
    assert all(issubclass(getattr(events, name), events.Event) for name in events.__all__)
    assert comfy_nb.events is events and "events" in comfy_nb.__all__


def test_retry_policy_and_job_progress_are_exported() -> None:
    from comfy_nb.client._backoff import RetryPolicy
    from comfy_nb.job import JobProgress

    assert comfy_nb.RetryPolicy is RetryPolicy and comfy_nb.JobProgress is JobProgress
    assert {"RetryPolicy", "JobProgress"} <= set(comfy_nb.__all__)
