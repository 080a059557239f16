"""``%%comfy_run --sweep ... --grid`` in a real JupyterLab, watched from Chromium: the sweep's
comparison grid renders, its cells fill in as the jobs end, one zoom (slider, wheel) and pan
apply to every cell, a click enlarges a cell, two cells compare, and Pick reports the values,
checked in the kernel; on a pool each cell names the server that ran it.

Needs Debian's chromium (``apt-get install chromium``); screenshots go to ``test-output/browser/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .browser_support import (
    TIMEOUT,
    JupyterLab,
    open_notebook,
    poll,
    run_all_cells,
    stderr_outputs,
    write_notebook,
)

WORKFLOW = Path(__file__).resolve().parents[2] / "comfy_nb" / "workflows" / "txt2img.json"
CELLS = ".comfy-nb-grid td.comfy-nb-grid-cell"
FILLED = ".comfy-nb-grid img.comfy-nb-grid-img"

# what the kernel prints for `code`, run beside the notebook's cells
KERNEL_OUTPUT = """async (code) => {
    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
    const future = kernel.requestExecute({ code });
    let text = "";
    future.onIOPub = (msg) => {
        if (msg.header.msg_type === "stream") text += msg.content.text;
        if (msg.header.msg_type === "error") text += msg.content.ename + ": " + msg.content.evalue;
    };
    await future.done;
    return text;
}"""
KERNEL_IDLE = ("() => window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel"
               "?.status === 'idle'")
TRANSFORMS = f"""() => [...document.querySelectorAll("{FILLED}")]
    .map(img => getComputedStyle(img).transform)"""


def sweep_cell(options: str) -> str:
    return f"%%comfy_run {options}\n{json.dumps(json.loads(WORKFLOW.read_text()))}"


def test_the_sweep_grid_fills_in_zooms_compares_and_picks(
        page: Any, lab: JupyterLab, artifacts: Path) -> None:
    write_notebook(lab.root_dir, "grid.ipynb", [
        "%load_ext comfy_nb",
        sweep_cell("swept --sweep seed=1,2 --sweep cfg=4,7 --grid seed,cfg "
                   "--set KSampler.steps=12"),
    ])
    open_notebook(page, lab, "grid.ipynb")
    run_all_cells(page)

    # the grid renders at once, then fills in job by job
    poll(lambda: page.locator(CELLS).count() == 4, "the grid's 4 cells")
    seen: list[int] = []

    def filled() -> bool:
        seen.append(page.locator(FILLED).count())
        return seen[-1] == 4

    poll(filled, "every cell to fill in")
    assert seen[0] < 4 and any(0 < count < 4 for count in seen), seen
    page.wait_for_function(KERNEL_IDLE, timeout=TIMEOUT * 1000, polling=100)
    poll(lambda: page.locator(FILLED).count() == 4, "the finished grid")  # redrawn at the end
    headers = page.locator(".comfy-nb-grid th").all_inner_texts()
    assert headers == ["cfg \\ seed", "seed=1", "seed=2", "cfg=4", "cfg=7"], headers
    page.locator(".comfy-nb-grid").first.scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "grid-filled.png")

    # one zoom for every cell: the slider, then the wheel over one cell, then a drag pans all
    page.locator(".comfy-nb-grid-zoom").fill("2")
    transforms = page.evaluate(TRANSFORMS)
    assert transforms == ["matrix(2, 0, 0, 2, 0, 0)"] * 4, transforms
    frame = page.locator(".comfy-nb-grid-frame").first
    box = frame.bounding_box()
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    page.mouse.wheel(0, -100)
    poll(lambda: page.evaluate(TRANSFORMS) == ["matrix(2.5, 0, 0, 2.5, 0, 0)"] * 4,
         "the wheel to zoom every cell")
    page.mouse.down()
    page.mouse.move(centre[0] + 20, centre[1] + 10, steps=4)
    page.mouse.up()
    transforms = page.evaluate(TRANSFORMS)
    assert len(set(transforms)) == 1 and transforms[0] == "matrix(2.5, 0, 0, 2.5, 20, 10)", \
        transforms
    assert page.locator(".comfy-nb-grid-overlay:not([hidden])").count() == 0  # a drag, no click
    page.screenshot(path=artifacts / "grid-zoomed.png")
    page.locator(".comfy-nb-grid-reset").click()

    # a click enlarges a cell; the kernel sends a larger rendition
    page.locator(FILLED).first.click()
    large = page.locator(".comfy-nb-grid-large-img")
    large.wait_for()
    poll(lambda: large.evaluate("img => img.naturalWidth") > 256, "the larger rendition")
    page.locator(".comfy-nb-grid-close").click()

    # A/B: two cells, swiped
    page.locator(".comfy-nb-grid-ab").nth(0).click()
    page.locator(".comfy-nb-grid-ab").nth(3).click()
    page.locator(".comfy-nb-grid-compare").wait_for()
    page.locator(".comfy-nb-grid-swipe").fill("25")
    clip = page.locator(".comfy-nb-grid-compare img.comfy-nb-grid-a").evaluate(
        "img => img.style.clipPath")
    assert clip == "inset(0px 75% 0px 0px)", clip
    caption = page.locator(".comfy-nb-grid-compare .comfy-nb-grid-caption").inner_text()
    assert caption == "A: seed=1 · cfg=4 | B: seed=2 · cfg=7", caption
    page.screenshot(path=artifacts / "grid-compare.png")
    page.locator(".comfy-nb-grid-compare .comfy-nb-grid-close").click()

    # Pick: the kernel answers, and the values are in the sweep
    cell = page.locator(CELLS).filter(has_text="seed=2 · cfg=7")
    cell.locator(".comfy-nb-grid-pick").click()
    message = page.locator(".comfy-nb-grid-message")
    poll(lambda: "picked seed=2 · cfg=7" in message.inner_text(), "the kernel's answer to Pick")
    assert message.inner_text().endswith("to rerun it: --set seed=2 --set cfg=7"), \
        message.inner_text()
    printed = page.evaluate(KERNEL_OUTPUT, "print(swept.picked)")
    assert printed.strip() == "{'seed': 2, 'cfg': 7}", printed
    page.screenshot(path=artifacts / "grid-picked.png")
    assert stderr_outputs(page) == []


def test_the_grid_of_a_sweep_on_a_pool_names_the_member_of_each_cell(
        page: Any, lab: JupyterLab) -> None:
    write_notebook(lab.root_dir, "pool_grid.ipynb", [
        "%load_ext comfy_nb",
        "import contextlib\nfrom comfy_nb.emulator import serve\n"
        "stack = contextlib.ExitStack()\n"
        "gpus = [stack.enter_context(serve(node_delay=0.05)) for _ in range(2)]",
        "%comfy connect {gpus[0].url} {gpus[1].url}",
        sweep_cell("swept --sweep seed=1,2 --grid seed --set KSampler.steps=4"),
    ])
    open_notebook(page, lab, "pool_grid.ipynb")
    run_all_cells(page)
    try:
        poll(lambda: page.locator(FILLED).count() == 2, "both cells to fill in")
        page.wait_for_function(KERNEL_IDLE, timeout=TIMEOUT * 1000, polling=100)
        servers = json.loads(page.evaluate(
            KERNEL_OUTPUT, "import json; print(json.dumps([row['server'] "
                           "for row in swept.rows()]))"))
        members = json.loads(page.evaluate(
            KERNEL_OUTPUT, "print(json.dumps([gpu.url for gpu in gpus]))"))
        assert sorted(servers) == sorted(members)  # one job on each member
        poll(lambda: page.locator(".comfy-nb-grid .comfy-nb-grid-server").all_inner_texts()
             == [f"on {server}" for server in servers], "each cell naming its member")
        assert stderr_outputs(page) == []
    finally:
        page.evaluate(KERNEL_OUTPUT, "get_ipython().run_line_magic('unload_ext', 'comfy_nb'); "
                                     "stack.close()")
