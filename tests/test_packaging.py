"""What the installed package carries and exposes: its own data (never ../shared at run time),
the console script, and the public names of the emulator."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import comfy_nb
import comfy_nb.emulator
from comfy_nb.emulator._object_info import recorded_object_info

PACKAGE = Path(comfy_nb.__file__).parent


def test_object_info_is_packaged() -> None:
    info = recorded_object_info()
    assert len(info) == 496
    assert sum(1 for node in info.values() if node.get("api_node")) == 100


def test_package_code_never_refers_to_the_recordings() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "fixtures/comfyui" in path.read_text(encoding="utf-8")
        or "/shared/" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_emulator_starts_with_the_recordings_out_of_reach(tmp_path: Path) -> None:
    script = (
        "import httpx\n"
        "from comfy_nb.emulator import serve\n"
        "with serve() as s:\n"
        "    assert len(httpx.get(s.url + '/object_info').json()) == 496\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def test_console_script_is_declared() -> None:
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("comfy-nb") == "comfy_nb.cli:main"


def test_public_names() -> None:
    assert {"connect", "Client", "AsyncClient", "Job", "AsyncJob", "Result", "OutputFile",
            "ComfyError", "__version__"} <= set(comfy_nb.__all__)
    for name in comfy_nb.__all__:
        assert hasattr(comfy_nb, name), name
    assert sorted(comfy_nb.emulator.__all__) == [
        "EmulatorOptions", "Faults", "RunningEmulator", "STAND_IN_NOTICE", "serve"]
    for name in comfy_nb.emulator.__all__:
        assert hasattr(comfy_nb.emulator, name)


def test_httpx_is_imported_by_the_transport_only() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
        if any(line.strip().startswith(("import httpx", "from httpx"))
               for line in path.read_text(encoding="utf-8").splitlines())
    )
    assert importers == ["client/_transport.py"]


def test_the_client_layer_never_imports_the_notebook_stack() -> None:
    for path in [*(PACKAGE / "client").glob("*.py"), PACKAGE / "job.py", PACKAGE / "result.py"]:
        imports = [line for line in path.read_text(encoding="utf-8").splitlines()
                   if line.strip().startswith(("import ", "from "))]
        assert not [line for line in imports if "ipywidgets" in line or "IPython" in line], \
            path.name


def test_the_tests_need_nothing_beside_the_repository() -> None:
    """A clone tests alone: no test reads reference material from outside the repository."""
    tests = PACKAGE.parent / "tests"
    offenders = [
        str(path.relative_to(tests))
        for path in tests.rglob("*.py")
        if any(mark in path.read_text(encoding="utf-8")
               for mark in ('"shared"', "/shared/", "parents[1].parent", "parents[2].parent"))
        and path.name != "test_packaging.py"
    ]
    assert offenders == []
    assert (tests / "fixtures" / "comfyui" / "http" / "object_info.json").is_file()


# -- what importing costs -------------------------------------------------------------------------


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_package_loads_nothing_heavy() -> None:
    """A script pays for what it uses: ``import comfy_nb`` loads neither the client stack nor
    the cache, recordings, sweeps, workflows, Pillow or the notebook layer."""
    loaded = json.loads(_fresh(
        "import json, sys\n"
        "import comfy_nb\n"
        "print(json.dumps(sorted(sys.modules)))\n"))
    heavy = {"httpx", "websockets", "asyncio", "PIL", "numpy", "IPython", "ipywidgets",
             "importlib.metadata", "comfy_nb.cache", "comfy_nb.recordings", "comfy_nb.sweeps",
             "comfy_nb.workflow", "comfy_nb.client", "comfy_nb.notebook", "comfy_nb.job"}
    assert sorted(heavy & set(loaded)) == []


@pytest.mark.slow
def test_public_names_load_on_first_use() -> None:
    shown = json.loads(_fresh(
        "import json\n"
        "import comfy_nb\n"
        "print(json.dumps(sorted(dir(comfy_nb))))\n"))
    assert set(comfy_nb.__all__) <= set(shown)
    for name in comfy_nb.__all__:  # each in a process of its own: no import order hides a cycle
        assert _fresh(f"import comfy_nb\nprint(comfy_nb.{name} is not None)") == "True", name
    star = _fresh("from comfy_nb import *\nprint(Client.__name__, callable(replay))")
    assert star == "Client True"


def test_the_functions_keep_names_their_modules_share() -> None:
    """``comfy_nb.replay`` and ``comfy_nb.sweep`` are functions, even once the modules that
    define them were imported as modules; ``comfy_nb.sweep.settings`` is the sweeps' settings."""
    assert _fresh(
        "import comfy_nb.recordings, comfy_nb.sweeps\n"
        "from comfy_nb.recordings import Recording, replay\n"
        "import comfy_nb\n"
        "print(callable(comfy_nb.replay), callable(comfy_nb.sweep), comfy_nb.replay is replay,"
        " Recording.__name__, comfy_nb.sweep.settings is comfy_nb.sweeps.settings)"
    ) == "True True True Recording True"


def test_replay_is_a_function_not_a_module() -> None:
    """Recordings live in ``comfy_nb.recordings``: no module is named like the function
    ``comfy_nb.replay``, so nothing can shadow it."""
    assert _fresh(
        "import importlib.util\n"
        "import comfy_nb\n"
        "print(importlib.util.find_spec('comfy_nb.replay'), callable(comfy_nb.replay),"
        " comfy_nb.recordings.__name__)"
    ) == "None True comfy_nb.recordings"


def test_sweep_is_a_function_not_a_module() -> None:
    """Sweeps live in ``comfy_nb.sweeps``: no module is named like the function
    ``comfy_nb.sweep``."""
    assert _fresh(
        "import importlib.util\n"
        "import comfy_nb\n"
        "print(importlib.util.find_spec('comfy_nb.sweep'), callable(comfy_nb.sweep),"
        " comfy_nb.sweeps.__name__)"
    ) == "None True comfy_nb.sweeps"


@pytest.mark.slow
def test_every_module_imports_first() -> None:
    """Any module of the package can be the first one a process imports."""
    modules = sorted(
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for path in PACKAGE.rglob("*.py") if path.name != "__main__.py")
    script = (
        "import importlib, subprocess, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    done = subprocess.run([sys.executable, '-c', f'import {name}'],\n"
        "                          capture_output=True, text=True)\n"
        "    if done.returncode:\n"
        "        failed.append(name + ': ' + done.stderr.strip().splitlines()[-1])\n"
        "print('\\n'.join(failed))\n")
    done = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr


def _imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import statement of a package module, at the top or inside a
    function, relative imports resolved; ``from a import b`` counts as ``a`` and ``a.b``."""
    package = ".".join(path.relative_to(PACKAGE.parent).parent.parts)
    found: list[tuple[int, str]] = []
    for statement in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(statement, ast.Import):
            found += [(statement.lineno, alias.name) for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - statement.level + 1] if statement.level else []
            module = ".".join([*base, *([statement.module] if statement.module else [])])
            found.append((statement.lineno, module))
            found += [(statement.lineno, f"{module}.{alias.name}") for alias in statement.names]
    return found


def _importers_of(folder: str, *prefixes: str) -> list[str]:
    """``path:line`` of each import in ``folder`` of a module under one of ``prefixes``."""
    return [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for line, name in _imported_names(path)
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)
    ]


def test_the_workflow_layer_never_imports_the_emulator() -> None:
    """The client's pre-submit check follows ComfyUI's rules from ``comfy_nb._comfyui``, never
    the test server: no module of ``comfy_nb.workflow`` imports ``comfy_nb.emulator``, at the
    top or inside a function, and checking a workflow loads none of it."""
    assert _importers_of("workflow", "comfy_nb.emulator") == []
    # the scan sees relative imports: the check's import of the rules and the file inputs' import
    # of the recorded node definitions are found
    assert {where.split(":")[0] for where in _importers_of("workflow", "comfy_nb._comfyui")} == {
        "workflow/_check.py", "workflow/_inputs.py"}

    loaded = json.loads(_fresh(
        "import json, pkgutil, sys, importlib\n"
        "import comfy_nb.workflow\n"
        "from comfy_nb.workflow._check import check_workflow\n"
        "for module in pkgutil.iter_modules(comfy_nb.workflow.__path__):\n"
        "    importlib.import_module('comfy_nb.workflow.' + module.name)\n"
        "info = {'LoadImage': {'input': {'required': {'image': [['a.png'], {}]}},\n"
        "                      'output': ['IMAGE', 'MASK'], 'output_node': False},\n"
        "        'PreviewImage': {'input': {'required': {'images': ['IMAGE']}},\n"
        "                         'output': [], 'output_node': True}}\n"
        "api = {'1': {'class_type': 'LoadImage', 'inputs': {'image': 'b.png'}},\n"
        "       '2': {'class_type': 'PreviewImage', 'inputs': {'images': ['1', 0]}}}\n"
        "problems = check_workflow(api, info)\n"
        "assert [p.type for p in problems] == ['custom_validation_failed'], problems\n"
        "print(json.dumps(sorted(sys.modules)))\n"))
    assert [name for name in loaded if name.startswith("comfy_nb.emulator")] == []


def test_the_comfyui_rules_import_neither_side() -> None:
    """``comfy_nb._comfyui`` holds what ComfyUI does, for the emulator and the client alike."""
    assert _importers_of("_comfyui", "comfy_nb.emulator", "comfy_nb.client", "comfy_nb.workflow",
                         "comfy_nb.notebook") == []


def test_the_workflow_layer_reads_no_emulator_file() -> None:
    """Not even data: the node definitions both use are ComfyUI's, in ``comfy_nb._comfyui``."""
    offenders = [str(path.relative_to(PACKAGE)) for path in (PACKAGE / "workflow").rglob("*.py")
                 if '"emulator"' in path.read_text(encoding="utf-8")]
    assert offenders == []


def test_a_job_knows_its_host_not_the_client() -> None:
    """An AsyncJob asks the :class:`~comfy_nb.client._host.JobHost` protocol and nothing else of
    the client: ``job.py`` imports only ``client._host`` from the client package (not even for
    type checking), and loading it loads neither the client, its connection nor its run
    pipeline. The client imports the job, never the other way round: no cycle."""
    from_client = {name for _, name in _imported_names(PACKAGE / "job.py")
                   if name.startswith("comfy_nb.client")}
    assert {".".join(name.split(".")[:3]) for name in from_client} == {"comfy_nb.client._host"}
    loaded = json.loads(_fresh(
        "import json, sys\n"
        "import comfy_nb.job\n"
        "print(json.dumps(sorted(sys.modules)))\n"))
    assert [name for name in loaded if name.startswith("comfy_nb.client.")] == [
        "comfy_nb.client._dialects", "comfy_nb.client._host"]


def test_the_architecture_map_names_only_what_exists() -> None:
    """ARCHITECTURE.md is the map: every module or package it names exists, and every package
    of comfy_nb is on it."""
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"([\w/]+\.py|\b[a-z_]+/)", text))
    root = PACKAGE.parent
    missing = [name for name in sorted(named) if not (root / name).exists()
               and not any(next(folder.glob(f"**/{name.rstrip('/')}"), None)
                           for folder in (PACKAGE, root / "tests"))]
    assert missing == []
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert {name for name in packages if f"{name}/" not in text} == set()
