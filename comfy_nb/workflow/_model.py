"""The :class:`Workflow` model: one ComfyUI workflow, loaded from a dict, JSON text, a ``.json``
file or the metadata ComfyUI writes into the PNG / WEBP files it saves, in either the API format
(what ``POST /prompt`` takes) or the editor's UI format (``nodes`` + ``links``).
"""

from __future__ import annotations

import copy as _copy
import hashlib
import json
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Union

from .. import provenance
from ..errors import ParameterError, WorkflowError
from . import _values
from ._models import ModelSwap, fit_models
from ._params import Param, list_params, node_id_key, set_value

__all__ = ["Workflow", "WorkflowSource"]

#: what :meth:`Workflow.load` accepts
WorkflowSource = Union["Workflow", Mapping[str, Any], str, Path, bytes, bytearray]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NEEDS_OBJECT_INFO = ("converting an editor workflow needs the server's node definitions: "
                      "pass object_info=client.object_info() or use client.run(wf)")
_MISSING: Any = object()


class Workflow:
    """A ComfyUI workflow in API format (``.format == "api"``) or editor UI format (``"ui"``).

    Build one with :meth:`load` (or ``Workflow(source)``, the same thing)::

        wf = Workflow.load("txt2img.png")          # a PNG / WEBP ComfyUI saved, a .json file,
        wf.set("KSampler.seed", 1).set(steps=20)   # a dict, JSON text, bytes or a Workflow
        wf.set({"Positive Prompt.text": "a cat"}, seed="random")
        wf.resolved_seeds                          # {"3.seed": 8027139541}

    **Copy semantics.** :meth:`load` deep-copies its input: the dict (or Workflow) you pass is
    never changed, whatever you do with the result. :meth:`set` changes *this* Workflow in place
    and returns it, so calls chain. :meth:`copy` gives an independent copy (the server's node
    definitions, ``object_info``, are read-only and shared). :meth:`to_api` returns a fresh dict.
    The client works on copies too: overrides and uploaded-file substitutions at submit time
    never change the Workflow you passed.

    **Parameter names** (for :meth:`set`): ``"<node>.<input>"`` where the node is its id
    (``"6.text"``), its title (``"Positive Prompt.text"``) or its class when exactly one node has
    it (``"KSampler.seed"``); the node part is split at the last dot, so titles may contain dots.
    A bare input name (``wf.set(seed=42)``) works when exactly one node has that input.
    Unknown or ambiguous names raise :class:`ParameterError` listing the candidates.

    **Editor (UI-format) workflows** are converted to API format with the server's node
    definitions: pass ``object_info=client.object_info()`` to :meth:`load` or :meth:`to_api`, or
    just ``client.run(wf)``. :meth:`set` on a UI-format workflow loaded with ``object_info``
    first converts it *in place* (``.format`` becomes ``"api"``); without ``object_info`` it
    raises :class:`WorkflowError`.

    Two Workflows are equal when their :attr:`content_hash` is (node titles do not count).
    """

    format: Literal["api", "ui"]
    #: the name of the bundled workflow this was loaded from (``"txt2img"``), else None; the
    #: client fits its model files to the server's (:mod:`comfy_nb.workflow._models`)
    bundled: str | None
    #: seeds picked by ``set(seed="random")``, by parameter path: ``{"3.seed": 123}``
    resolved_seeds: dict[str, int]
    _object_info: Mapping[str, Any] | None
    _data: dict[str, Any]

    def __init__(self, source: WorkflowSource, *,
                 object_info: Mapping[str, Any] | Any | None = None) -> None:
        object_info = _node_definitions(object_info)
        held = getattr(source, "__comfy_workflow__", None)
        if callable(held):  # an object that stands for a workflow (a comfy_nb.use function)
            source = held()
        if isinstance(source, Workflow):
            self.format = source.format
            self._data = _copy.deepcopy(source._data)
            self._object_info = object_info if object_info is not None else source._object_info
            self.resolved_seeds = dict(source.resolved_seeds)
            self.bundled = source.bundled
            return
        self._object_info = object_info
        self.resolved_seeds = {}
        self.format, self._data = _parse(_read(source))
        self.bundled = _bundled_name(source)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def load(cls, source: WorkflowSource, *,
             object_info: Mapping[str, Any] | Any | None = None) -> Workflow:
        """A Workflow from ``source``: a path (``.json``, ``.png``, ``.webp``), a dict, JSON text,
        the bytes of a PNG / WEBP file ComfyUI saved, another Workflow (copied), a saved output
        with a ``.comfy_nb.json`` sidecar, the name of a bundled workflow (``"txt2img"``), or an
        object whose ``__comfy_workflow__()`` gives one of these (a :func:`comfy_nb.use`
        function: its workflow with its current defaults).

        API or UI format is detected; a ``{"prompt": {...}}`` request body is unwrapped. From an
        image, the API-format ``prompt`` metadata is preferred over the editor's ``workflow``.
        ``object_info`` (``client.object_info()``) is kept for converting UI-format workflows and
        for parameter constraints. Anything unreadable raises :class:`WorkflowError`.
        """
        return cls(source, object_info=object_info)

    def copy(self) -> Workflow:
        """An independent copy (changing one never changes the other)."""
        return Workflow(self)

    __copy__ = copy

    def __deepcopy__(self, memo: dict[int, Any]) -> Workflow:
        return Workflow(self)

    # -- views ----------------------------------------------------------------------------

    @property
    def object_info(self) -> Mapping[str, Any] | None:
        """The server node definitions given at load time, if any."""
        return self._object_info

    @property
    def nodes(self) -> Mapping[str, Any]:
        """A read-only snapshot of the nodes: ``{node id: {"class_type", "inputs", ...}}`` in API
        format; for a UI-format workflow, its conversion (needs ``object_info``). Nested dicts
        are read-only mappings and lists are tuples; change values with :meth:`set`."""
        frozen: Mapping[str, Any] = _freeze(self._api_view())
        return frozen

    def __len__(self) -> int:
        """The number of nodes (for UI format: the editor's nodes, notes and reroutes included)."""
        if self.format == "ui":
            return len(self._data.get("nodes", []))
        return len(self._data)

    def _class_types(self) -> list[str]:
        seen: dict[str, None] = {}
        if self.format == "ui":
            for node in self._data.get("nodes", []):
                if isinstance(node, dict) and isinstance(node.get("type"), str):
                    seen.setdefault(node["type"])
        else:
            for node_id in sorted(self._data, key=node_id_key):
                class_type = self._data[node_id].get("class_type")
                if isinstance(class_type, str):
                    seen.setdefault(class_type)
        return list(seen)

    def __repr__(self) -> str:
        kinds = self._class_types()
        shown = ", ".join(kinds[:3]) + (", …" if len(kinds) > 3 else "")
        count = len(self)
        noun = "node" if count == 1 else "nodes"
        return f"<Workflow {self.format}, {count} {noun}" + (f", {shown}>" if shown else ">")

    # -- conversion and identity ----------------------------------------------------------

    def to_api(self, object_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A deep copy in API format (what ``POST /prompt`` takes as ``prompt``).

        A UI-format workflow is converted with ``object_info`` or the one given at load;
        without either this raises :class:`WorkflowError`.
        """
        if self.format == "api":
            return _copy.deepcopy(self._data)
        info = object_info if object_info is not None else self._object_info
        if info is None:
            raise WorkflowError(_NEEDS_OBJECT_INFO)
        from ._convert import ui_to_api

        try:
            converted = ui_to_api(_copy.deepcopy(self._data), dict(info))
        except WorkflowError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise WorkflowError(f"cannot convert the editor workflow: {exc!r}") from exc
        if not isinstance(converted, dict):
            raise WorkflowError("the editor workflow did not convert to an API-format workflow")
        return converted  # new dicts built from a copy: nothing is shared with this workflow

    def to_ui(self) -> dict[str, Any]:
        """A deep copy of the editor (UI-format) workflow; :class:`WorkflowError` for API format
        (there is no way back from API format to the editor's layout)."""
        if self.format != "ui":
            raise WorkflowError("this is an API-format workflow; it has no editor layout")
        return _copy.deepcopy(self._data)

    def _api_view(self, object_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The API-format nodes: the stored dict itself for API format (do not mutate), a fresh
        conversion for UI format."""
        if self.format == "api":
            return self._data
        return self.to_api(object_info)

    @property
    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the API form: sorted keys, no whitespace, each
        node's ``_meta`` left out so titles do not change identity. For a UI-format workflow
        loaded without ``object_info`` it is the hash of the editor JSON instead (so it differs
        from the hash of the same workflow in API format)."""
        if self.format == "ui" and self._object_info is None:
            body: Any = self._data
        else:
            body = {node_id: ({k: v for k, v in node.items() if k != "_meta"}
                              if isinstance(node, dict) else node)
                    for node_id, node in self._api_view().items()}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workflow):
            return NotImplemented
        return self.content_hash == other.content_hash

    __hash__ = None  # type: ignore[assignment]  # mutable: equal by content, so not hashable

    # -- parameters -----------------------------------------------------------------------

    def params(self, object_info: Mapping[str, Any] | None = None) -> list[Param]:
        """Every settable (non-link) input of every node, with the constraints (``min``,
        ``max``, ``step``, ``choices``, ``multiline``, ``default``) that ``object_info`` (given
        here or at load) declares; ``None`` where unknown. Ordered by node id (numeric-aware),
        then the server's input order. A UI-format workflow needs ``object_info``."""
        info = object_info if object_info is not None else self._object_info
        return list_params(self._api_view(info), info)

    def set(self, path: str | Mapping[str, Any] | None = None, value: Any = _MISSING, /, *,
            force: bool = False, **params: Any) -> Workflow:
        """Set parameters in place and return this Workflow (so calls chain)::

            wf.set("KSampler.seed", 1)
            wf.set({"Positive Prompt.text": "a cat", "6.text": "a dog"})
            wf.set(seed="random", steps=20)      # bare input names

        All names are checked before anything changes: on :class:`ParameterError` the workflow
        is unchanged. An input fed by a link is replaced only with ``force=True``. ``"random"``
        for a ``seed`` / ``noise_seed`` input becomes a random integer in the range the server
        declares (``0..2**53-1`` without object_info), recorded in :attr:`resolved_seeds`.
        """
        changes: list[tuple[str, Any]] = []
        if isinstance(path, Mapping):
            if value is not _MISSING:
                raise ParameterError("pass either a mapping of values or a name and a value")
            changes.extend(path.items())
        elif path is not None:
            if value is _MISSING:
                raise ParameterError(f"no value given for {path!r}: use wf.set({path!r}, value)")
            changes.append((path, value))
        elif value is not _MISSING:
            raise ParameterError("a value needs a parameter name: wf.set('KSampler.seed', 1)")
        changes.extend(params.items())
        if self.format == "ui":
            if self._object_info is None:
                raise WorkflowError("setting parameters of an editor (UI-format) workflow needs "
                                    "the server's node definitions: load it with "
                                    "object_info=client.object_info(), or use "
                                    "Workflow.load(wf.to_api(client.object_info()))")
            staged = self.to_api()
        else:
            staged = _copy.deepcopy(self._data)
        seeds = dict(self.resolved_seeds)
        for name, new in changes:
            if not isinstance(name, str):
                raise ParameterError(f"a parameter name is a string, not {name!r}")
            set_value(staged, name, new, object_info=self._object_info, force=force,
                      resolved_seeds=seeds)
        self._data, self.format, self.resolved_seeds = staged, "api", seeds
        return self

    def fit_models(self, object_info: Mapping[str, Any] | Any | None = None) -> list[ModelSwap]:
        """Replace, in place, each model file the server does not list (``ckpt_name``,
        ``vae_name``…) with the first one it lists for that input; the swaps made. The client
        does this for bundled workflows only (:attr:`bundled`), before any override, and says
        which files it swapped; call it yourself to do the same for another workflow."""
        info = _node_definitions(object_info)
        info = info if info is not None else self._object_info
        if info is None:
            raise WorkflowError("fitting model files needs the server's node definitions: pass "
                                "object_info=client.object_info()")
        if self.format == "ui":
            self._data, self.format = self.to_api(info), "api"
        return fit_models(self._data, info)


# -- reading sources --------------------------------------------------------------------------


def _read(source: Any) -> Any:
    """The JSON-like value a source holds (not yet validated)."""
    if isinstance(source, Path):
        return _read_file(source)
    if isinstance(source, str):
        text = source.strip()
        if not text:
            raise WorkflowError("the workflow is an empty string: pass a path (.json, .png, "
                                ".webp), JSON text, a dict or a Workflow")
        if text.startswith(("{", "[")):
            return _parse_json(source, "the JSON text")
        return _read_file(Path(source), source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _read_bytes(bytes(source), "the bytes")
    if isinstance(source, Mapping):
        return _clean_copy(source)
    raise WorkflowError("a workflow is a dict, JSON text, a path (.json, .png, .webp), PNG/WEBP "
                        f"bytes or a Workflow, not {type(source).__name__}")


def _read_file(path: Path, text: str | None = None) -> Any:
    """The workflow in the file at ``path`` (or the bundled workflow of that name). ``text``:
    the string the path was given as, which may be JSON that is not an object (``"null"``)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        bundled = _bundled(str(path))
        if bundled is not None:
            return bundled
        if text is not None and _is_json(text):
            return _parse_json(text, "the JSON text")  # not an object: _parse says so
        raise WorkflowError(f"no workflow file at {path} (bundled workflows: "
                            f"{', '.join(_bundled_names())})") from None
    except (OSError, ValueError) as exc:  # a directory, no permission, a NUL in the name...
        raise WorkflowError(f"cannot read the workflow file {path}: {exc}") from None
    suffix = path.suffix.lower()
    sidecar = provenance.sidecar_path(path)
    if path.name.endswith(provenance.SIDECAR_SUFFIX) or (
            suffix not in (".json", ".png", ".webp") and sidecar.is_file()):
        # an output comfy_nb saved, or its sidecar: the workflow that made it
        found = provenance.read(path)
        if not found or not isinstance(found.get("prompt"), dict):
            raise WorkflowError(f"{path} has no workflow in its provenance record")
        return found["prompt"]
    if suffix == ".json":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise WorkflowError(f"{path} is not UTF-8 JSON text") from None
        return _parse_json(text, str(path))
    return _read_bytes(data, str(path))


def _bundled_names() -> list[str]:
    from importlib import resources

    folder = resources.files("comfy_nb.workflows")
    return sorted(item.name[:-5] for item in folder.iterdir() if item.name.endswith(".json"))


def _bundled_name(source: Any) -> str | None:
    """The bundled workflow ``source`` names, when it names one and no such file exists."""
    if isinstance(source, (str, Path)) and str(source) in _bundled_names():
        return None if Path(source).exists() else str(source)
    return None


def _bundled(name: str) -> Any:
    """A workflow shipped with comfy_nb, by bare name (``txt2img``), or None."""
    if name not in _bundled_names():
        return None
    from ..workflows import bundled

    return bundled(name)


def _read_bytes(data: bytes, what: str) -> Any:
    if data.startswith(_PNG_SIGNATURE):
        return _from_metadata(_png_text(data), what, "PNG")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _from_metadata(_webp_exif_text(data), what, "WEBP")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WorkflowError(f"cannot read a workflow from {what}: not JSON, nor a PNG or WEBP "
                            "file") from None
    if text.lstrip().startswith(("{", "[")):
        return _parse_json(text, what)
    raise WorkflowError(f"cannot read a workflow from {what}: not JSON, nor a PNG or WEBP file")


def _is_json(text: str) -> bool:
    """Whether ``text`` is a JSON value of any kind (``null``, ``1``, ``"x"``, ...)."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _parse_json(text: str, what: str) -> Any:
    try:
        return _values.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"{what} is not valid JSON: {exc}") from None
    except ValueError as exc:
        raise WorkflowError(f"{what} cannot be sent to a server: {exc}") from None


def _clean_copy(value: Any) -> Any:
    """A deep copy that is plain JSON (lists, dicts with string keys, scalars)."""
    try:
        return _values.plain_copy(value)
    except ValueError as exc:
        raise WorkflowError(f"the workflow cannot be sent to a server: {exc}") from None


def _from_metadata(chunks: dict[str, str], what: str, kind: str) -> Any:
    """The workflow in an image's text metadata: ``prompt`` (API) first, else ``workflow``."""
    candidates = [key for key in ("prompt", "workflow") if key in chunks]
    if not candidates:
        raise WorkflowError(f"{what} is a {kind} file without ComfyUI workflow metadata "
                            "(no 'prompt' or 'workflow' entry); was it saved by ComfyUI's "
                            "Save Image node with metadata enabled?")
    first_error: WorkflowError | None = None
    for key in candidates:
        try:
            data = _parse_json(chunks[key], f"the {key!r} metadata of {what}")
            _parse(data)
            return data
        except WorkflowError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


def _png_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG (``tEXt``, ``zTXt``, ``iTXt`` and ComfyUI's ``comf`` chunks in
    animated PNGs), first occurrence of each key. Damaged chunks are skipped."""
    found: dict[str, str] = {}
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IEND":
            break
        try:
            item = _png_chunk_text(kind, body)
        except (ValueError, zlib.error):
            continue
        if item is not None and item[0] not in found:
            found[item[0]] = item[1]
    return found


def _png_chunk_text(kind: bytes, body: bytes) -> tuple[str, str] | None:
    if kind not in (b"tEXt", b"zTXt", b"iTXt", b"comf") or b"\0" not in body:
        return None
    key_raw, _, rest = body.partition(b"\0")
    key = key_raw.decode("latin-1")
    if kind in (b"tEXt", b"comf"):
        text = rest.decode("utf-8") if kind == b"comf" else rest.decode("latin-1")
    elif kind == b"zTXt":
        text = zlib.decompress(rest[1:]).decode("latin-1")
    else:  # iTXt: flag, method, language\0, translated keyword\0, text
        if len(rest) < 2:
            return None
        compressed, payload = rest[0], rest[2:]
        payload = payload.split(b"\0", 2)[-1] if payload.count(b"\0") >= 2 else b""
        text = (zlib.decompress(payload) if compressed else payload).decode("utf-8")
    return key, text


def _webp_exif_text(data: bytes) -> dict[str, str]:
    """``prompt`` / ``workflow`` from a WEBP's EXIF: ComfyUI stores them as ``"prompt:{...}"``
    strings in IFD0 (tags 0x0110, 0x010F, ...)."""
    found: dict[str, str] = {}
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos:pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 8 + length + (length & 1)
        if kind != b"EXIF":
            continue
        try:
            from PIL import Image

            exif = Image.Exif()
            exif.load(body if body.startswith(b"Exif\0\0") else b"Exif\0\0" + body)
            values = list(exif.values())
        except Exception:  # a damaged EXIF block is as good as none
            continue
        for value in values:
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, str) and ":" in value:
                key, _, text = value.partition(":")
                found.setdefault(key.strip("\0 "), text.rstrip("\0"))
    return found


# -- validating ----------------------------------------------------------------------------


def _is_ui(data: Any) -> bool:
    """An editor workflow: a top-level ``nodes`` list (``is_ui_format``'s stricter test, which
    also wants ``links``, implies this one)."""
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def _looks_like_api(data: dict[str, Any]) -> bool:
    return bool(data) and all(isinstance(node, dict) and "class_type" in node
                              for node in data.values())


def _parse(data: Any) -> tuple[Literal["api", "ui"], dict[str, Any]]:
    """Validate a JSON-like value as a workflow: ``(format, data)``."""
    if not isinstance(data, dict):
        raise WorkflowError("a workflow is a JSON object (API format "
                            "{node_id: {class_type, inputs}} or an editor workflow), "
                            f"not {_values.json_type(data)}")
    if isinstance(data.get("prompt"), dict) and not _looks_like_api(data):
        data = data["prompt"]  # a POST /prompt body
    if _is_ui(data):
        for node in data["nodes"]:
            if not isinstance(node, dict):
                raise WorkflowError("an editor workflow's 'nodes' must be a list of objects, "
                                    f"found {type(node).__name__}")
        return "ui", data
    if not data:
        raise WorkflowError("the workflow has no nodes")
    for node_id, node in data.items():
        if not isinstance(node, dict):
            raise WorkflowError(f"not a ComfyUI workflow: {node_id!r} is not a node (API format "
                                "is {node_id: {class_type, inputs}}; editor format has 'nodes' "
                                "and 'links')")
        if not isinstance(node.get("class_type"), str):
            raise WorkflowError(f"node {node_id!r} has no class_type: not an API-format workflow "
                                "(an unknown node type in an editor export?)")
        if not isinstance(node.get("inputs"), dict):
            raise WorkflowError(f"node {node_id!r} ({node['class_type']}) has no 'inputs' "
                                "object")
        meta = node.get("_meta")
        if meta is not None and not isinstance(meta, dict):
            raise WorkflowError(f"node {node_id!r} has a '_meta' that is not an object")
    return "api", data


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _node_definitions(object_info: Any) -> Mapping[str, Any] | None:
    """``object_info`` as given, or read from a connected :class:`comfy_nb.Client` passed in
    its place."""
    if object_info is None or isinstance(object_info, Mapping):
        return object_info
    reader = getattr(object_info, "object_info", None)
    if callable(reader):
        definitions = reader()
        if hasattr(definitions, "__await__"):
            definitions.close()
            raise WorkflowError("an AsyncClient cannot be read synchronously: pass "
                                "object_info=await client.object_info()")
        if isinstance(definitions, Mapping):
            return definitions
    raise WorkflowError("object_info must be the dict client.object_info() returns, or a "
                        f"connected Client, not {type(object_info).__name__}")
