"""Memory while saving large outputs: the emulator (in its own process) serves two 256 MiB
videos; each way of getting them onto disk runs in a fresh Python process of its own, and the
growth of its peak resident memory (RSS) over what it held just before is compared with the
baseline measured in the same run:

- ``whole bytes``: the old way, as ``Result.save`` did it before streaming: every file's bytes
  downloaded into memory (``Client.download``), kept while the result lives, then written;
- ``Result.save``: the synchronous client, files streamed to disk a chunk at a time;
- ``Result.asave``: the AsyncClient, downloads running concurrently.

The peak is the kernel's high-water mark (``VmHWM``, reset before the step); where that is not
available it falls back to ``ru_maxrss``, which cannot be reset (the growth is then a lower
bound). It prints ratios, not verdicts.

Usage: python benchmarks/download_memory.py [--mib N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import small_workflow, start_emulator

NAMES = ["large_1.mp4", "large_2.mp4"]
METHODS = ["whole bytes", "Result.save", "Result.asave"]
MiB = 1024 * 1024


# -- in the measuring process --------------------------------------------------------------------


def _status(field: str) -> int | None:
    """A ``/proc/self/status`` figure in bytes (Linux), else None."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else None


def _reset_peak() -> bool:
    """Reset the kernel's high-water mark of this process's RSS; False where it cannot be."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status("VmHWM") is not None


def _peak() -> int:
    found = _status("VmHWM")
    if found is not None:
        return found
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _outputs() -> dict:
    return {"7": {"videos": [{"filename": name, "subfolder": "", "type": "output"}
                             for name in NAMES]}}


def measure(method: str, url: str, out: Path) -> dict:
    """Run one way of saving the two videos; its peak RSS growth and seconds."""
    from comfy_nb import AsyncClient, Client, Result

    downloads = Path(tempfile.mkdtemp(prefix="comfy-nb-bench-downloads-"))
    if method == "Result.asave":
        async def run() -> tuple[int, int, float, bool]:
            async with AsyncClient(url) as client:
                made = await client.run(small_workflow(1, "bench"), cache=False)
                result = Result("bench", _outputs(), source=made.source, cache_dir=downloads)
                exact = _reset_peak()
                before = _status("VmRSS") or 0
                started = time.perf_counter()
                await result.asave(out)
                return before, _peak(), time.perf_counter() - started, exact

        before, peak, seconds, exact = asyncio.run(run())
    else:
        with Client(url) as client:
            made = client.run(small_workflow(1, "bench"), cache=False)
            result = Result("bench", _outputs(), source=made.source, cache_dir=downloads)
            exact = _reset_peak()
            before = _status("VmRSS") or 0
            started = time.perf_counter()
            if method == "whole bytes":
                kept = [client.download(file) for file in result.files]
                for file, data in zip(result.files, kept, strict=True):
                    assert isinstance(data, bytes)
                    (out / file.filename).write_bytes(data)
            else:
                result.save(out)
            seconds = time.perf_counter() - started
            peak = _peak()
    sizes = sorted(path.stat().st_size for path in out.iterdir() if path.suffix == ".mp4")
    return {"growth": max(0, peak - before), "seconds": seconds, "exact": exact, "sizes": sizes}


# -- the driver ----------------------------------------------------------------------------------


def write_video(path: Path, size: int) -> None:
    """``size`` incompressible bytes that start like an MP4 file."""
    header = b"\x00\x00\x00\x18ftypisom"
    with open(path, "wb") as out:
        out.write(header)
        written = len(header)
        while written < size:
            chunk = os.urandom(min(MiB, size - written))
            out.write(chunk)
            written += len(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="size of each video (default 256)")
    parser.add_argument("--measure", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.url, Path(args.out))))
        return

    with tempfile.TemporaryDirectory(prefix="comfy-nb-bench-") as folder:
        root = Path(folder)
        (root / "data" / "output").mkdir(parents=True)
        for name in NAMES:
            write_video(root / "data" / "output" / name, args.mib * MiB)
        process, url = start_emulator(root / "data")
        try:
            rows = {}
            for method in METHODS:
                out = root / method.replace(" ", "_").replace(".", "_")
                out.mkdir()
                answer = subprocess.run(
                    [sys.executable, __file__, "--measure", method, "--url", url, "--out",
                     str(out)], capture_output=True, text=True)
                if answer.returncode != 0:
                    raise SystemExit(f"measuring {method!r} failed:\n{answer.stderr.strip()}")
                rows[method] = json.loads(answer.stdout.strip().splitlines()[-1])
        finally:
            process.terminate()
            process.wait(30)

    total = 2 * args.mib
    print(f"two outputs of {args.mib} MiB each ({total} MiB), saved through the emulator; "
          "peak RSS growth of a fresh process")
    print(f"{'method':<14} {'peak growth':>12} {'x baseline':>11} {'x bytes saved':>14} "
          f"{'seconds':>8}")
    baseline = rows["whole bytes"]["growth"] or 1
    for method, row in rows.items():
        assert row["sizes"] == [args.mib * MiB] * 2, row
        growth = row["growth"]
        print(f"{method:<14} {growth / MiB:>8.1f} MiB {growth / baseline:>11.3f} "
              f"{growth / (total * MiB):>14.3f} {row['seconds']:>8.2f}")
    if not all(row["exact"] for row in rows.values()):
        print("(the peak could not be reset here: ru_maxrss was used, growths are lower bounds)")


if __name__ == "__main__":
    main()
