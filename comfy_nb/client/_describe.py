"""What a connection is, in a few lines for people: the server, its dialect and version, and the
warnings that belong with it — the emulator's stand-in pixels, the date of a replayed recording,
a public Binder session where no key may be typed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._config import on_binder

CONNECT_HINT = ("Connect a real server with COMFY_URL, comfy_nb.connect(URL) or %comfy connect "
                "URL; Comfy Cloud with COMFY_CLOUD_API_KEY or %comfy connect cloud.")
BINDER_WARNING = "⚠ This is a public Binder session: do not enter API keys here."


def describe_connection(url: str, dialect: str, stats: Mapping[str, Any] | None) -> str:
    """The banner for a client at ``url`` whose ``/system_stats`` answered ``stats`` (None: not
    read; ``{"error": ...}``: reading it failed)."""
    stats = stats if isinstance(stats, Mapping) else {}
    system = stats.get("system")
    system = system if isinstance(system, Mapping) else {}
    version = f"version {system.get('comfyui_version') or '?'}"
    if system.get("cloud_version"):
        version = f"Comfy Cloud {system['cloud_version']}, ComfyUI {system.get('comfyui_version')}"
    lines = [f"comfy_nb: connected to {url} ({dialect}, {version})"]
    if isinstance(stats.get("error"), str):
        lines.append(f"⚠ the server's status could not be read: {stats['error']}")
    emulator = stats.get("emulator")
    notice = emulator.get("notice") if isinstance(emulator, Mapping) else None
    if isinstance(notice, str) and notice:
        lines.append(f"⚠ {notice}. {CONNECT_HINT}")
    replayed = stats.get("replay")
    if isinstance(replayed, Mapping) and replayed.get("label"):
        lines.append(f"▶ {replayed['label']}: cells are served from the recording, with no "
                     "server; a changed cell is reported, not run.")
    if on_binder():
        lines.append(BINDER_WARNING)
    return "\n".join(lines)
