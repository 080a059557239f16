"""Bundled workflows name the emulator's checkpoint; on a server with other model files the
client uses the server's first one and says so, and never changes a user's own workflow."""

from __future__ import annotations

import logging

import pytest

from comfy_nb import AsyncClient, Workflow, WorkflowInvalid
from comfy_nb.emulator import RunningEmulator, serve
from comfy_nb.emulator._object_info import current_object_info
from comfy_nb.workflow._models import ModelSwap, fit_models
from comfy_nb.workflows import bundled

from .both_clients import WAIT, make_client
from .factories import Emulators

THEIRS = ("juggernaut_xl.safetensors", "sd_xl_base_1.0.safetensors")


@pytest.fixture(scope="module")
def other_server(module_emulators: Emulators) -> RunningEmulator:
    return module_emulators(step_delay=0, checkpoints=THEIRS)


def test_fit_models_takes_the_first_file_the_server_lists(tmp_path: object) -> None:
    info = current_object_info(tmp_path, checkpoints=THEIRS)  # type: ignore[arg-type]
    api = bundled("txt2img")
    swaps = fit_models(api, info)
    assert swaps == [ModelSwap("4", "ckpt_name", "random_sd15.safetensors",
                               "juggernaut_xl.safetensors")]
    assert api["4"]["inputs"]["ckpt_name"] == "juggernaut_xl.safetensors"
    assert str(swaps[0]) == ("ckpt_name 'random_sd15.safetensors' is not on this server; "
                             "using 'juggernaut_xl.safetensors'")


def test_fit_models_leaves_listed_files_and_unlisted_inputs(tmp_path: object) -> None:
    info = current_object_info(tmp_path)  # type: ignore[arg-type]  # lists random_sd15
    api = bundled("txt2img")
    assert fit_models(api, info) == []
    assert api == bundled("txt2img")
    no_models = current_object_info(tmp_path, checkpoints=())  # type: ignore[arg-type]
    assert fit_models(api, no_models) == []  # nothing to take: validation will say so


def test_workflow_remembers_it_is_bundled() -> None:
    loaded = Workflow.load("txt2img")
    assert loaded.bundled == "txt2img"
    assert loaded.copy().set(steps=3).bundled == "txt2img"
    assert Workflow.load(bundled("txt2img")).bundled is None  # the same graph as a dict: yours


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_bundled_workflow_runs_on_a_server_with_other_checkpoints(
        mode: str, other_server: RunningEmulator, caplog: pytest.LogCaptureFixture) -> None:
    client = await make_client(mode, other_server.url)
    try:
        with caplog.at_level(logging.WARNING, logger="comfy_nb"):
            for seed in (1, 2):
                job = client.submit("txt2img", seed=seed, steps=2)
                job = job if mode == "sync" else await job
                result = job.wait(WAIT) if mode == "sync" else await job.wait(WAIT)
                assert result.workflow["4"]["inputs"]["ckpt_name"] == THEIRS[0]
        said = [r.getMessage() for r in caplog.records if "ckpt_name" in r.getMessage()]
        assert said == ["comfy_nb: bundled workflow txt2img: ckpt_name "
                        "'random_sd15.safetensors' is not on this server; using "
                        "'juggernaut_xl.safetensors' (--set ckpt_name=NAME picks another)"]
    finally:
        client.close() if mode == "sync" else await client.aclose()


async def test_an_explicit_model_is_the_users_choice(other_server: RunningEmulator) -> None:
    async with AsyncClient(other_server.url) as client:
        job = await client.submit("txt2img", ckpt_name=THEIRS[1], steps=2)
        assert (await job.wait(WAIT)).workflow["4"]["inputs"]["ckpt_name"] == THEIRS[1]
        with pytest.raises(WorkflowInvalid, match="random_sd15"):
            await client.submit("txt2img", ckpt_name="random_sd15.safetensors")


async def test_a_users_own_workflow_is_never_changed(other_server: RunningEmulator) -> None:
    async with AsyncClient(other_server.url) as client:
        with pytest.raises(WorkflowInvalid, match="random_sd15"):
            await client.submit(bundled("txt2img"))


@pytest.mark.parametrize("dialect", ["local", "cloud"])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_models_lists_the_servers_files(mode: str, dialect: str) -> None:
    with serve(dialect=dialect, checkpoints=THEIRS) as server:  # type: ignore[arg-type]
        client = await make_client(mode, server.url, api_key=server.api_key)
        try:
            async def models(folder: str | None = "checkpoints") -> list[str]:
                found = client.models(folder)
                return found if mode == "sync" else await found  # type: ignore[no-any-return]

            assert await models() == sorted(THEIRS)
            assert await models("no such folder") == []
            assert "checkpoints" in await models(None) and "loras" in await models(None)
        finally:
            client.close() if mode == "sync" else await client.aclose()


def test_the_comfy_models_magic(other_server: RunningEmulator, tmp_path: object,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("COMFY_URL", other_server.url)
    monkeypatch.setenv("COMFY_NB_PROGRESS", "off")
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "comfy_nb")
    try:
        outcome = ip.run_cell("found = %comfy models checkpoints")
        outcome.raise_error()
        assert ip.user_ns["found"] == sorted(THEIRS)
        assert ip.run_cell("%comfy models checkpoints loras").error_in_exec is not None
    finally:
        ip.run_line_magic("unload_ext", "comfy_nb")
