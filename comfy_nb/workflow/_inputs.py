"""Python objects as the values of file inputs (LoadImage.image, LoadAudio.audio, ...).

A notebook may put a PIL image, a numpy array, bytes, a local path (``pathlib.Path`` or a string
naming an existing file), a ``file://`` URL or an ``http(s)://`` URL where the server expects the
name of a file in its input folder. :func:`pending_uploads` finds those values;
:func:`upload_inputs` uploads each one (identical bytes once per server, through ``cache``) and
returns a new workflow holding the server-side names instead. Strings that already are server-side
names (values of the input's combo list) are left alone.

Which inputs take files is read from ``object_info``: the inputs flagged ``image_upload``,
``audio_upload`` or ``video_upload``. :data:`FILE_INPUTS` holds the answer for the node
definitions packaged with comfy_nb (ComfyUI 0.3.64), used when no ``object_info`` is given.

Nothing here speaks HTTP to the ComfyUI server: the caller passes ``upload``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pathlib
import sys
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._comfyui.definitions import recorded_object_info
from ..client._uploads import sniff_suffix, upload_payload
from ..errors import WorkflowError

__all__ = ["FILE_INPUTS", "file_inputs", "pending_uploads", "upload_inputs"]

# The spec flags that mark a file input, and the kind of file each one takes.
_UPLOAD_FLAGS = {"image_upload": "image", "audio_upload": "audio", "video_upload": "video"}
_URL_TIMEOUT = 60.0
_USER_AGENT = "comfy_nb (input upload)"


def _file_specs(object_info: Mapping[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(class, input) → (kind of file, folder it is read from) for every flagged input."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for class_type, info in object_info.items():
        inputs = info.get("input") if isinstance(info, Mapping) else None
        if not isinstance(inputs, Mapping):
            continue
        for category in ("required", "optional"):
            section = inputs.get(category)
            if not isinstance(section, Mapping):
                continue
            for name, spec in section.items():
                options = spec[1] if isinstance(spec, list) and len(spec) > 1 else None
                if not isinstance(options, Mapping):
                    continue
                for flag, kind in _UPLOAD_FLAGS.items():
                    if options.get(flag) is True:
                        folder = options.get("image_folder", "input")
                        found[(str(class_type), str(name))] = (kind, str(folder))
                        break
    return found


def _by_class(specs: Mapping[tuple[str, str], Any]) -> dict[str, tuple[str, ...]]:
    result: dict[str, tuple[str, ...]] = {}
    for class_type, name in specs:
        result[class_type] = (*result.get(class_type, ()), name)
    return result


def file_inputs(object_info: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """class → the names of its inputs that take an uploaded file, read from ``object_info``."""
    return _by_class(_file_specs(object_info))


_PACKAGED_SPECS = _file_specs(recorded_object_info())
#: class → names of the inputs that take a file, for the packaged (ComfyUI 0.3.64) node set.
FILE_INPUTS: dict[str, tuple[str, ...]] = _by_class(_PACKAGED_SPECS)


def _combo(object_info: Mapping[str, Any] | None, class_type: str, name: str) -> list[Any]:
    if object_info is None:
        return []
    info = object_info.get(class_type)
    inputs = info.get("input") if isinstance(info, Mapping) else None
    if not isinstance(inputs, Mapping):
        return []
    for category in ("required", "optional"):
        section = inputs.get(category)
        spec = section.get(name) if isinstance(section, Mapping) else None
        if not isinstance(spec, list) or not spec:
            continue
        if isinstance(spec[0], list):
            return spec[0]
        if len(spec) > 1 and isinstance(spec[1], Mapping):
            options = spec[1].get("options")
            return options if isinstance(options, list) else []
    return []


def _is_image_object(value: Any) -> bool:
    """A PIL image or a numpy array (checked without importing either)."""
    image_module = sys.modules.get("PIL.Image")
    if image_module is not None and isinstance(value, image_module.Image):
        return True
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _looks_like_path(value: str) -> bool:
    """A string meant as a local path although no file is there (to report it missing)."""
    return value.startswith(("~", "./", "../", ".\\", "..\\")) or os.path.isabs(value)


def wants_upload(value: Any, combo: list[Any]) -> bool:
    if isinstance(value, (bytes, bytearray, memoryview, os.PathLike)) or _is_image_object(value):
        return True
    if not isinstance(value, str) or not value:
        return False
    if value in combo:
        return False
    lowered = value.lower()
    if lowered.startswith(("http://", "https://", "file://")):
        return True
    try:
        return os.path.isfile(os.path.expanduser(value)) or _looks_like_path(value)
    except (OSError, ValueError):
        return False


def _specs_of(class_type: str, object_info: Mapping[str, Any] | None
              ) -> Mapping[tuple[str, str], tuple[str, str]]:
    """The file inputs of one class (reading only that class: a server lists hundreds)."""
    if object_info is None:
        return _PACKAGED_SPECS
    return _file_specs({class_type: object_info.get(class_type)})


def pending_uploads(
    api: dict[str, Any], object_info: dict[str, Any] | None
) -> list[tuple[str, str, Any]]:
    """(node id, input name, value) for each file input of ``api`` whose value must be uploaded
    first: a PIL image, numpy array, bytes, ``pathlib.Path``, a string naming a local file that
    is not in the input's combo list, or a ``file://`` / ``http(s)://`` URL."""
    if not isinstance(api, Mapping):
        return []
    specs: dict[str, Mapping[tuple[str, str], Any]] = {}  # the classes used, not all of them
    found: list[tuple[str, str, Any]] = []
    for node_id, node in api.items():
        if not isinstance(node, Mapping) or not isinstance(node.get("inputs"), Mapping):
            continue
        class_type = node.get("class_type")
        if not isinstance(class_type, str):
            continue
        if class_type not in specs:
            specs[class_type] = _specs_of(class_type, object_info)
        for name, value in node["inputs"].items():
            if (class_type, name) not in specs[class_type]:
                continue
            if wants_upload(value, _combo(object_info, class_type, name)):
                found.append((str(node_id), str(name), value))
    return found


async def upload_inputs(
    api: dict[str, Any],
    object_info: dict[str, Any] | None,
    upload: Callable[[Any, str | None], Awaitable[str]],
    *,
    cache: dict[str, str],
) -> dict[str, Any]:
    """A new ``api`` whose pending file values (see :func:`pending_uploads`) are replaced by the
    names ``upload(data, name)`` returns. ``cache`` maps the sha256 of uploaded bytes to their
    server-side name; keep one per server, so identical bytes are uploaded once. ``api`` itself
    is not modified. Raises :class:`WorkflowError` for a missing local file or a URL that cannot
    be fetched; errors of ``upload`` itself propagate."""
    pending = pending_uploads(api, object_info)
    if not pending:
        return dict(api)
    result: dict[str, Any] = dict(api)
    for node_id, name, value in pending:
        key = node_id if node_id in api else next(k for k in api if str(k) == node_id)
        node = result[key]
        class_type = node["class_type"]
        kind, folder = _specs_of(class_type, object_info)[(class_type, name)]
        where = f"node {node_id} ({class_type}), input {name!r}"
        server_name = await upload_value(value, kind, where, upload, cache=cache)
        if folder != "input" and not server_name.endswith("]"):
            server_name += " [input]"  # uploads land in input/; say so to LoadImageOutput
        if result[key] is api[key]:  # copy each changed node once
            result[key] = {**node, "inputs": dict(node["inputs"])}
        result[key]["inputs"][name] = server_name
    return result


async def upload_value(
    value: Any,
    kind: str,
    where: str,
    upload: Callable[[Any, str | None], Awaitable[str]],
    *,
    cache: dict[str, str],
) -> str:
    """Upload one value (see :func:`pending_uploads` for what it may be) unless the same bytes
    were uploaded before (``cache``: sha256 → server-side name); the server-side name."""
    data, filename = await _materialize(value, kind, where)
    digest = hashlib.sha256(data).hexdigest()
    server_name = cache.get(digest)
    if server_name is None:
        server_name = await upload(data, filename)
        cache[digest] = server_name
    return server_name


async def _materialize(value: Any, kind: str, where: str) -> tuple[bytes, str]:
    """The bytes to upload for ``value`` and a file name for them."""
    if _is_image_object(value):
        if kind != "image":
            raise WorkflowError(f"{where}: an image or array cannot be the {kind} file; pass a "
                                f"path, bytes or URL of a {kind} file")

        try:
            filename, data, _ = await asyncio.to_thread(upload_payload, value, None)
        except (TypeError, ValueError) as exc:
            raise WorkflowError(f"{where}: cannot encode the image: {exc}") from exc
        return data, filename
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise WorkflowError(f"{where}: the bytes to upload are empty")
        return data, _name_for(data, kind)
    text = os.fsdecode(value) if isinstance(value, os.PathLike) else str(value)
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        data, url_name = await asyncio.to_thread(_fetch_url, text, where)
        return data, url_name or _name_for(data, kind)
    if lowered.startswith("file://"):
        parsed = urllib.parse.urlparse(text)
        text = urllib.request.url2pathname(parsed.path)
        if parsed.netloc and parsed.netloc != "localhost":
            text = f"//{parsed.netloc}{text}"
    path = pathlib.Path(os.path.expanduser(text))
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise WorkflowError(f"{where}: no file at {path}; pass an existing local file, or "
                            "the name of a file already on the server") from None
    except OSError as exc:
        raise WorkflowError(f"{where}: cannot read {path}: {exc}") from exc
    if not data:
        raise WorkflowError(f"{where}: {path} is empty")
    return data, path.name


def _fetch_url(url: str, where: str) -> tuple[bytes, str | None]:
    """GET ``url`` with the standard library: (bytes, a file name from the URL or None)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=_URL_TIMEOUT) as response:
            data: bytes = response.read()
            disposition = response.headers.get_filename()
    except Exception as exc:
        raise WorkflowError(f"{where}: could not fetch {url}: {exc}") from exc
    if not data:
        raise WorkflowError(f"{where}: {url} returned no data")
    name = disposition or urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
    name = os.path.basename(name.replace("\\", "/"))
    return data, name if "." in name.strip(".") else None


_DEFAULT_SUFFIX = {"image": ".png", "audio": ".wav", "video": ".mp4"}


def _name_for(data: bytes, kind: str) -> str:
    """``comfy_nb_<hash>.<ext>`` with the extension sniffed from the bytes."""
    suffix = sniff_suffix(data) or _DEFAULT_SUFFIX[kind]
    return f"comfy_nb_{hashlib.sha256(data).hexdigest()[:12]}{suffix}"
