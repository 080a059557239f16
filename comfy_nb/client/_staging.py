"""A workflow made ready to be matched, cached or uploaded: :class:`Stager`.

Staging loads the workflow (a :class:`~comfy_nb.workflow.Workflow`, a dict, JSON text or a path),
converts an editor-format one with the server's node definitions, fits a bundled workflow's model
files to the server's, sets the parameters asked for on a copy, resolves ``"random"`` seeds, and
reads every file to upload, leaving a placeholder naming its content in its place (a
:class:`~comfy_nb.client._caching.DeferredUploads`), so the run's cache key (or, replaying, its
match key) is known before anything is uploaded. Both the live run pipeline and the replaying
client stage with it; where the node definitions come from is theirs to say
(:class:`DefinitionSource`).

Must not: upload, validate or submit anything; it never changes the caller's workflow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import FeatureUnavailable
from ._caching import DeferredUploads

if TYPE_CHECKING:
    from ..workflow import Workflow
    from ..workflow._models import ModelSwap

log = logging.getLogger("comfy_nb")

WorkflowLike = Any  # a Workflow, a dict, JSON text, or a path to a JSON file


@dataclass
class Staged:
    """A workflow prepared up to, not including, uploads and validation."""

    api: dict[str, Any]  # upload placeholders in the file inputs still to be uploaded
    seeds: dict[str, int]  # "<node>.<input>" -> the seed "random" resolved to
    uploads: DeferredUploads
    object_info: dict[str, Any] | None  # the node definitions it was staged with


class DefinitionSource(Protocol):
    """Where a stager's node definitions come from."""

    @property
    def confirmed(self) -> bool:
        """Whether the definitions held came from the server itself (not a copy)."""
        ...

    async def get(self, refresh: bool = False) -> dict[str, Any]:
        """The node definitions (``refresh``: asked of the server now, where there is one)."""
        ...


class Stager:
    """Stages workflows with the node definitions of ``definitions``; says once per stager
    which model files of a bundled workflow it replaced."""

    def __init__(self, definitions: DefinitionSource) -> None:
        self._definitions = definitions
        self._told_swaps: set[tuple[str, ModelSwap]] = set()

    async def stage(self, workflow: WorkflowLike, overrides: dict[str, Any],
                    validate: bool) -> Staged:
        """``workflow`` converted and overridden, ``"random"`` seeds resolved, each file to
        upload read and standing as a placeholder of its content (what the result cache keys
        on). Placeholders also replace upload values in ``overrides``."""
        from ..workflow import Workflow, WorkflowError
        from ..workflow._inputs import upload_inputs, wants_upload

        deferred = DeferredUploads()
        if isinstance(workflow, Workflow):
            loaded = workflow.copy()
        else:
            source = workflow
            if isinstance(source, dict):  # objects in it cannot go through Workflow.load
                source = await upload_inputs(source, None, deferred, cache=deferred.names)
            loaded = Workflow.load(source)
        # non-JSON values (images, arrays, bytes, paths) are uploaded before set(); strings
        # (file names, URLs, local paths) go through set() and the upload pass below
        uploads = {k: v for k, v in overrides.items()
                   if not isinstance(v, str) and wants_upload(v, [])}
        object_info: dict[str, Any] | None = None
        if loaded.format == "ui" or overrides or validate or loaded.bundled:
            # a bundled workflow takes the server's own model files: never from a copy
            try:
                object_info = await self._definitions.get(
                    refresh=bool(loaded.bundled) and not self._definitions.confirmed)
            except FeatureUnavailable as exc:
                if loaded.format == "ui":  # converting it needs them
                    raise FeatureUnavailable(f"this workflow is in the editor's format, and "
                                             f"converting it needs node definitions: {exc}. "
                                             "Export it with 'Export (API)' instead"
                                             ) from None
                # an API-format workflow goes as it is; the server checks it on submit
                log.debug("comfy_nb: no node definitions, so no check before submitting")
        unconfirmed = object_info is not None and not self._definitions.confirmed
        try:
            return await self._stage_with(loaded.copy() if unconfirmed else loaded, overrides,
                                          uploads, deferred, object_info)
        except WorkflowError:
            if not unconfirmed:
                raise
            # a copy of the node definitions read from disk may not know what this names
            fresh = await self._definitions.get(refresh=True)
            return await self._stage_with(loaded, overrides, uploads, deferred, fresh)

    async def _stage_with(self, loaded: Workflow, overrides: dict[str, Any],
                          uploads: dict[str, Any], deferred: DeferredUploads,
                          object_info: dict[str, Any] | None) -> Staged:
        """The rest of :meth:`stage`, once the workflow is loaded and the node definitions
        known."""
        from ..workflow import Workflow
        from ..workflow._inputs import upload_inputs, upload_value

        if loaded.bundled and object_info is not None:  # before overrides: those are the user's
            self._tell_swaps(loaded.bundled, loaded.fit_models(object_info))
        if loaded.format == "ui":
            loaded = Workflow.load(loaded.to_api(object_info), object_info=object_info)
        for name, value in uploads.items():  # upload first, then set the server-side name
            overrides[name] = await upload_value(value, "image", f"the value of {name!r}",
                                                 deferred, cache=deferred.names)
        if overrides:
            loaded = Workflow.load(loaded, object_info=object_info).set(overrides)
        api = loaded.to_api(object_info)
        api = await upload_inputs(api, object_info, deferred, cache=deferred.names)
        return Staged(api, dict(loaded.resolved_seeds), deferred, object_info)

    def _tell_swaps(self, workflow: str, swaps: list[ModelSwap]) -> None:
        """Say, once per stager, which model files of a bundled workflow were swapped."""
        for swap in swaps:
            if (workflow, swap) not in self._told_swaps:
                self._told_swaps.add((workflow, swap))
                log.warning("comfy_nb: bundled workflow %s: %s (--set %s=NAME picks another)",
                            workflow, swap, swap.input)
