"""The synchronous and asynchronous clients are twins: every public method of
:class:`~comfy_nb.AsyncClient` has a method of the same name on :class:`~comfy_nb.Client` with the
same parameters (the sync one blocks instead of being awaited), and the replaying clients answer
every one of them, or raise a :class:`~comfy_nb.ReplayError` saying that a replay cannot."""

from __future__ import annotations

import inspect
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import comfy_nb
from comfy_nb import AsyncClient, AsyncReplayClient, Client, ReplayClient, ReplayError
from comfy_nb.emulator import serve
from comfy_nb.recordings import ReplayedResult
from comfy_nb.workflows import bundled

#: AsyncClient methods whose twin has another name (the sync client connects when it is made)
RENAMED = {"aclose": "close"}
NO_TWIN = {"open"}
#: what a method returns on the sync client, where it differs from the async one
SYNC_RETURNS = {"AsyncJob": "Job", "AsyncClient": "Client"}


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {name: member for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


def test_every_async_method_has_a_sync_twin_with_the_same_parameters() -> None:
    asynchronous = public_methods(AsyncClient)
    synchronous = public_methods(Client)
    assert asynchronous, "no public method found"
    for name, method in asynchronous.items():
        assert inspect.iscoroutinefunction(method), name
        if name in NO_TWIN:
            continue
        twin = synchronous.get(RENAMED.get(name, name))
        assert twin is not None, f"Client has no twin of AsyncClient.{name}"
        assert not inspect.iscoroutinefunction(twin), name
        mine, theirs = inspect.signature(method), inspect.signature(twin)
        assert list(mine.parameters.values()) == list(theirs.parameters.values()), name
        returned = str(mine.return_annotation)
        for async_type, sync_type in SYNC_RETURNS.items():
            returned = returned.replace(async_type, sync_type)
        assert returned == str(theirs.return_annotation), name
    # and nothing public on the sync side that the async one lacks
    extra = set(synchronous) - {RENAMED.get(name, name) for name in asynchronous}
    assert extra == set(), extra


def test_the_clients_take_the_same_options_as_connect() -> None:
    expected = list(inspect.signature(AsyncClient).parameters.values())
    assert list(inspect.signature(Client).parameters.values()) == expected
    # connect's url may also name several servers (a pool), whose members' keys and capacities
    # it takes by URL as Pool does: the rest is the same
    pool_url = expected[0].replace(annotation="str | list[str] | tuple[str, ...] | None")
    keys = expected[1].replace(
        annotation="str | Secret | Mapping[str, str | Secret | None] | None")
    capacity = inspect.signature(comfy_nb.Pool).parameters["capacity"]
    assert list(inspect.signature(comfy_nb.connect).parameters.values()) == [
        pool_url, keys, *expected[2:], capacity]


def test_known_options_are_named_not_swallowed() -> None:
    """Options whose names are known are keyword arguments: only ``submit``, ``run``,
    ``cached_result`` and ``prepare`` take ``**params`` (the workflow's own inputs, by name)."""
    for cls in (AsyncClient, Client):
        for name, method in public_methods(cls).items():
            variadic = [parameter.name for parameter in
                        inspect.signature(method).parameters.values()
                        if parameter.kind is inspect.Parameter.VAR_KEYWORD]
            assert variadic == (["params"] if name in ("submit", "run", "cached_result", "prepare")
                                else []), name
    for function in (comfy_nb.connect, Client, AsyncClient, ReplayedResult, comfy_nb.Result):
        assert all(parameter.kind is not inspect.Parameter.VAR_KEYWORD
                   for parameter in inspect.signature(function).parameters.values()), function


# -- the replaying clients ----------------------------------------------------------------------


def tiny() -> dict[str, Any]:
    workflow = bundled("txt2img")
    workflow["3"]["inputs"].update(steps=2, seed=7)
    workflow["5"]["inputs"].update(width=64, height=64)
    return workflow


Recorded = tuple[Path, str, dict[str, str]]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """A recording of one run: its folder, the run's prompt id and its output file."""
    folder = tmp_path_factory.mktemp("parity") / "recording"
    with serve(step_delay=0.0) as server, comfy_nb.connect(server.url) as live, \
            comfy_nb.record(folder):
        result = live.run(tiny(), timeout=60)
        file = result.images[0].params()
    return folder, result.prompt_id, file


def calls(recorded: Recorded) -> dict[str, tuple[Any, ...]]:
    """Arguments for every public method of the clients (names as on AsyncClient)."""
    _, prompt_id, file = recorded
    image = Image.new("RGB", (4, 4), (1, 2, 3))
    return {
        "open": (), "submit": (tiny(),), "run": (tiny(),), "cached_result": (tiny(),),
        "prepare": (tiny(),),
        "job": (prompt_id,), "jobs": (), "queue": (), "cancel": (prompt_id,),
        "cancel_many": ([prompt_id],), "interrupt": (), "clear_queue": (), "delete": ([],),
        "upload_image": (image,), "upload_mask": (image, "a.png"), "download": (file,),
        "object_info": (), "models": (), "system_stats": (), "describe": (), "user": (),
        "aclose": (),
    }


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    attempts: list[Any] = []

    def connect(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise ConnectionRefusedError("the network is closed")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


async def test_the_async_replay_client_answers_every_method_or_says_it_cannot(
        recording: Recorded, no_network: list[Any]) -> None:
    folder = recording[0]
    arguments = calls(recording)
    assert set(arguments) == set(public_methods(AsyncClient))  # a new method needs a case here
    answered, refused = set(), set()
    for name, args in arguments.items():
        client = await AsyncReplayClient(folder).open()
        method: Callable[..., Awaitable[Any]] = getattr(client, name)
        try:
            await method(*args)
        except ReplayError:
            refused.add(name)
        else:
            answered.add(name)
        finally:
            await client.aclose()
    assert refused == {"job", "upload_mask", "models"}, refused
    assert no_network == []


def test_the_replay_client_answers_every_method_or_says_it_cannot(
        recording: Recorded, no_network: list[Any]) -> None:
    folder = recording[0]
    arguments = calls(recording)
    refused = set()
    for name, args in arguments.items():
        if name in NO_TWIN:
            continue
        with comfy_nb.replay(folder) as client:
            assert isinstance(client, ReplayClient)
            method: Callable[..., Any] = getattr(client, RENAMED.get(name, name))
            try:
                method(*args)
            except ReplayError:
                refused.add(name)
    assert refused == {"job", "upload_mask", "models"}, refused
    assert no_network == []
