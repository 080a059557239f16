"""Record and replay: a notebook's runs kept as plain files, served again with no server.

``record(path)`` starts a :class:`Recording`: every job any client of this process submits is
written, once it ended (succeeded or failed; run on the server or served by the result cache),
into ``path``::

    recording/
      recording.json           the index: comfy_nb version, when, which server (no URL for the
                               emulator, whose port changes), the runs in order
      object_info.json         the server's definitions of the node classes the runs used
      01-1a2b3c4d/             one folder per run: <number>-<first 8 hex digits of its match key>
        workflow.json          the API-format workflow as submitted (sorted keys, one-space indent)
        job.json               prompt id, parameters, resolved seeds, status, outputs, a summary
                               of the events the progress display needs, the error of a failure;
                               each once (the outputs' provenance is rebuilt from them)
        outputs/node9-1.png    the output files, byte for byte as the server sent them

``replay(path)`` gives a :class:`ReplayClient`: the part of the :class:`~comfy_nb.Client` surface
the notebook layer uses, serving each submitted run from the recording. A run is served only if
its *match key* equals a recorded one's: the API workflow after overrides (node titles left out),
with each seed the run asked to be ``"random"`` standing as ``"random"`` (so a ``--seed random``
cell replays) and each uploaded file standing as the SHA-256 of its bytes. Anything else raises
:class:`ReplayMismatch`, naming the closest recorded run and the inputs that differ — a near
match is never served. Results are :class:`ReplayedResult` objects labelled "replayed from
<date>, <server>".

Owns: recordings, by concern: their layout (:mod:`._layout`), reading them (:mod:`._reading`),
the match key (:mod:`._matching`), recording through the run pipeline's ``job_observers`` hook
(:mod:`._writing`), and the replaying clients (:mod:`._replaying`).

Must not: make any network request while replaying (every method that would needs a server
raises :class:`ReplayError`), or write an API key, a signed URL or ``extra_data`` into a
recording (server URLs are stored without credentials or query, output mappings without signed
URLs, and a run whose files or text would contain a key sent with it is not recorded).

Limits: a file input given as an http(s) URL cannot be replayed (it would be downloaded to be
compared); an editor-format workflow is converted with the recorded node definitions only.
``comfy_nb.record`` and ``comfy_nb.replay`` are the functions :func:`record` and :func:`replay`;
this package holds them and their classes.
"""

from __future__ import annotations

from ..errors import ReplayError, ReplayMismatch
from ._layout import ReplayedFrom
from ._reading import RecordedRun, ReplayedResult
from ._replaying import AsyncReplayClient, ReplayClient, replay
from ._writing import Recording, record

__all__ = [
    "AsyncReplayClient",
    "RecordedRun",
    "Recording",
    "ReplayClient",
    "ReplayError",
    "ReplayMismatch",
    "ReplayedFrom",
    "ReplayedResult",
    "record",
    "replay",
]
