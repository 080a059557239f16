"""Every deliberate difference between the emulator and the recorded ComfyUI 0.3.64, in one place.

Each entry says what differs and why. Conformance checks ignore a field or value only through a
name defined here, so ``git grep`` from an entry finds every check it relaxes. Entries are added
with one ``NAME = deviation(...)`` line each (append-only).
"""

from __future__ import annotations

DEVIATIONS: dict[str, str] = {}


def deviation(key: str, text: str) -> str:
    """Register a deliberate difference and return its key."""
    if key in DEVIATIONS:
        raise ValueError(f"deviation {key!r} is declared twice")
    DEVIATIONS[key] = text
    return key


# Identifiers, clocks and machines: different on every server and every run.
TIMESTAMPS = deviation("timestamps", "`timestamp` fields are the emulator's clock (ms since the epoch).")
PROMPT_IDS = deviation("prompt-ids", "Server-made prompt ids are fresh uuid4s; client-supplied ids are kept, as recorded.")
CLIENT_IDS = deviation("client-ids", "Client ids and the fresh `sid` of a socket without clientId are the test's own.")
NUMBERS = deviation("numbers", "Queue `number` counts from 0 on every emulator start; the recording server had run earlier prompts.")
PATHS = deviation("paths", "Paths (tracebacks, folder_paths, exception messages naming files) are the emulator's data folder, not /srv/ComfyUI.")
TRACEBACK_TEXT = deviation("traceback-text", "Execution-error tracebacks are the emulator's own Python frames; validation tracebacks match only for the recorded cases.")
MACHINE_STATS = deviation("machine-stats", "system_stats values (RAM, VRAM, python/pytorch versions, argv) describe the emulator's machine; it adds an `emulator` key saying its pixels are stand-ins.")
TEMP_LETTERS = deviation("temp-letters", "PreviewImage/PreviewAudio temp names use 5 random letters, so they differ from the recorded ones.")
SET_ORDER = deviation("set-order", "ComfyUI builds several lists from Python sets (outputs_to_execute, executed, current_outputs, history output order), whose order changes between server starts; compared as sets.")

# What the emulator cannot or does not reproduce.
STAND_IN_PIXELS = deviation("stand-in-pixels", "Model nodes (CheckpointLoaderSimple, CLIPTextEncode, KSampler, VAEDecode, ...) render deterministic stand-in pixels, so their images and previews differ in bytes and look, not in size, format or message layout.")
ENCODED_BYTES = deviation("encoded-bytes", "Encoded media (JPEG previews, WEBP, MP4/WEBM, FLAC/MP3) come from this machine's Pillow/PyAV builds, so bytes and sizes may differ; format, dimensions, frame counts, sample rates and durations are compared instead.")
NO_FRONTEND = deviation("no-frontend", "The emulator ships no web frontend: /extensions answers [] and / serves a one-line page.")
EXECUTION_SPEED = deviation("execution-speed", "Nodes run at the emulator's speed (ImageBlur on 1024² takes ms, not ~1 s); `node_delay` and `step_delay` slow it down where a test needs a job to stay queued or running.")
INPUT_FILES = deviation("input-files", "File combos (LoadImage, LoadAudio, ...) list the emulator's own input folder; it starts with only example.png.")
MODEL_FILES = deviation("model-files", "Model folders list only the recorded checkpoint (random_sd15.safetensors, a stand-in); /experiment/models entries report size 0 and the emulator's start time; /view_metadata answers the emulator's own note.")
