"""An emulator of a local ComfyUI server (0.3.64, as recorded) and of Comfy Cloud's API, for
offline demos, tests and Binder readers without a key.

It executes the model-free core nodes for real (Pillow, numpy, PyAV) and renders the text-to-image
graph as deterministic stand-in pixels, never model output. Start it with ``comfy-nb emulator`` or::

    from comfy_nb.emulator import serve

    with serve(dialect="local") as server:
        print(server.url)            # http://127.0.0.1:<free port>
        server.faults.update(http_error_count=2, http_error_status=503)

With ``dialect="cloud"`` the server also has ``.api_key`` and a separate storage origin that
``/api/view`` redirects to. ``dialect="v2"`` serves the Comfy API v2 (``/api/v2/...``) as
comfy-api-proxy 0.1.6 serves it in front of ComfyUI; ``token=`` makes it require
``Authorization: Bearer <token>`` (``.api_key`` is then that token).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._faults import Faults
from ._server import STAND_IN_NOTICE, EmulatorOptions, EmulatorState, ServerThread

__all__ = ["STAND_IN_NOTICE", "EmulatorOptions", "Faults", "RunningEmulator", "serve"]


class RunningEmulator:
    """A started emulator: its URL, key (cloud), faults and folders. Stop it with :meth:`stop`
    (the :func:`serve` context manager does)."""

    def __init__(self, options: EmulatorOptions) -> None:
        from ._cloud_routes import build_cloud_apps
        from ._local_routes import build_local_app

        self.options = options
        self.state = EmulatorState(options)
        build: Any = build_cloud_apps if options.dialect == "cloud" else build_local_app
        if options.dialect == "v2":
            from ._v2_routes import build_v2_app

            build = build_v2_app
        self._thread = ServerThread(self.state, build)
        self._stopped = False

    def start(self) -> RunningEmulator:
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:8188``."""
        return self._thread.url

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):] + "/ws"

    @property
    def storage_url(self) -> str:
        """Cloud only: base URL of the separate storage origin signed URLs point to."""
        return self.state.storage_url

    @property
    def dialect(self) -> str:
        return self.options.dialect

    @property
    def api_key(self) -> str | None:
        """Cloud: the key the emulator accepts in ``X-API-Key`` and ``token=``; v2: the bearer
        token it requires (None: it requires none)."""
        return self.state.api_key

    @property
    def faults(self) -> Faults:
        """Switchable faults; see :class:`Faults`."""
        return self.state.faults

    def set_faults(self, **changes: Any) -> None:
        """Change faults (``restart=True`` also drops queue, history and caches)."""
        if changes.pop("restart", False):
            self.restart()
        self.state.faults.update(**changes)

    def restart(self) -> None:
        """Behave like a restarted server: running jobs stop, queue and history are lost."""
        self.state.restart()

    @property
    def input_dir(self) -> Any:
        return self.state.input_dir

    @property
    def output_dir(self) -> Any:
        return self.state.output_dir

    @property
    def max_concurrent_jobs_seen(self) -> int:
        """How many jobs ran at the same time at most (checks concurrency limits)."""
        return self.state.max_concurrent_seen

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._thread.stop()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<comfy_nb emulator {self.options.dialect} at {self.url or 'not started'}>"


@contextmanager
def serve(
    dialect: str = "local",
    port: int = 0,
    faults: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[RunningEmulator]:
    """Start an emulator in a background thread on ``127.0.0.1:port`` (0 = a free port) and stop
    it on exit. ``options`` are :class:`EmulatorOptions` fields (``step_delay``, ``tier``, ...);
    ``faults`` sets :class:`Faults` from the start (change them later with ``set_faults``)."""
    emulator = RunningEmulator(EmulatorOptions(dialect=dialect, port=port, **options))  # type: ignore[arg-type]
    if faults:
        emulator.set_faults(**faults)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
