"""The outputs of one finished prompt: :class:`Result` and its :class:`OutputFile` items.

Owns: turning a history/jobs ``outputs`` mapping into typed files (kind, MIME type, animated),
text outputs, lazy cached downloads, and saving files safely (sanitised names inside the target
directory, no silent overwrite, atomic writes, the ``prompt`` PNG chunk ComfyUI writes).

Must not: speak HTTP or touch widgets. Bytes arrive only through a :class:`FileSource` that the
client implements. The server's ``filename``/``subfolder`` are untrusted and never become paths
without :func:`safe_filename`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import mimetypes
import os
import re
import secrets
import threading
import unicodedata
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from . import provenance

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["FileSource", "OutputFile", "Result", "add_png_prompt", "folder_problem",
           "safe_filename"]

# -- kinds and MIME types ------------------------------------------------------------------------

#: extension -> (kind, MIME type); checked before :mod:`mimetypes`, whose tables vary by system.
_BY_EXTENSION: dict[str, tuple[str, str]] = {
    ".png": ("image", "image/png"),
    ".apng": ("image", "image/png"),
    ".jpg": ("image", "image/jpeg"),
    ".jpeg": ("image", "image/jpeg"),
    ".webp": ("image", "image/webp"),
    ".gif": ("image", "image/gif"),
    ".bmp": ("image", "image/bmp"),
    ".tif": ("image", "image/tiff"),
    ".tiff": ("image", "image/tiff"),
    ".avif": ("image", "image/avif"),
    ".mp4": ("video", "video/mp4"),
    ".m4v": ("video", "video/mp4"),
    ".webm": ("video", "video/webm"),
    ".mov": ("video", "video/quicktime"),
    ".mkv": ("video", "video/x-matroska"),
    ".avi": ("video", "video/x-msvideo"),
    ".flac": ("audio", "audio/flac"),
    ".mp3": ("audio", "audio/mpeg"),
    ".opus": ("audio", "audio/ogg"),
    ".ogg": ("audio", "audio/ogg"),
    ".wav": ("audio", "audio/wav"),
    ".m4a": ("audio", "audio/mp4"),
    ".aac": ("audio", "audio/aac"),
    ".glb": ("model3d", "model/gltf-binary"),
    ".gltf": ("model3d", "model/gltf+json"),
    ".obj": ("model3d", "model/obj"),
    ".stl": ("model3d", "model/stl"),
    ".fbx": ("model3d", "application/octet-stream"),
    ".usdz": ("model3d", "model/vnd.usdz+zip"),
    ".ply": ("model3d", "application/octet-stream"),
    ".latent": ("other", "application/octet-stream"),
    ".json": ("other", "application/json"),
    ".txt": ("other", "text/plain"),
}

#: output key -> kind, used only when the extension says nothing.
_KIND_BY_KEY = {"audio": "audio", "video": "video", "videos": "video", "gifs": "video",
                "3d": "model3d"}

_OCTET = "application/octet-stream"


def _kind_and_mime(filename: str, key: str) -> tuple[str, str]:
    ext = os.path.splitext(filename)[1].lower()
    if ext in _BY_EXTENSION:
        return _BY_EXTENSION[ext]
    mime, _ = mimetypes.guess_type("x" + ext, strict=False) if ext else (None, None)
    if mime:
        for prefix, kind in (("image/", "image"), ("video/", "video"), ("audio/", "audio"),
                             ("model/", "model3d")):
            if mime.startswith(prefix):
                return kind, mime
        return "other", mime
    return _KIND_BY_KEY.get(key, "other"), _OCTET


# -- the protocol the client implements ----------------------------------------------------------


@runtime_checkable
class FileSource(Protocol):
    """Downloads one output file (the client implements it; ``/view`` or a signed URL)."""

    def fetch(self, file: OutputFile) -> bytes:
        """The file's bytes (blocking)."""
        ...

    async def afetch(self, file: OutputFile) -> bytes:
        """The file's bytes."""
        ...


# -- one file ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputFile:
    """One file a node produced, as the server described it.

    ``filename``, ``subfolder`` and ``type`` are kept exactly as the server sent them (use
    :meth:`params` for ``/view``); they are never used as local paths. Files made by a
    :class:`Result` are bound to it, so :meth:`read`, :meth:`image` and :meth:`save` work.
    """

    node_id: str
    filename: str
    subfolder: str
    type: str
    key: str
    kind: str
    mime_type: str
    animated: bool = False
    node_title: str | None = None
    _result: Result | None = field(default=None, compare=False, repr=False, hash=False)

    def params(self) -> dict[str, str]:
        """The query parameters of ``/view`` for this file."""
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}

    @property
    def is_preview(self) -> bool:
        """A temporary preview (PreviewImage, PreviewAudio…), not a saved output."""
        return self.type == "temp"

    def _owner(self) -> Result:
        if self._result is None:
            raise RuntimeError(f"{self.filename!r} is not bound to a Result, so it cannot be "
                               "downloaded; take files from Result.files")
        return self._result

    def read(self) -> bytes:
        """The file's bytes, downloaded on first use and cached."""
        return self._owner()._read(self)

    async def aread(self) -> bytes:
        """The file's bytes, downloaded on first use and cached."""
        return await self._owner()._aread(self)

    def image(self) -> Image.Image:
        """The picture as a Pillow image (the first frame of an animation)."""
        if self.kind != "image":
            raise ValueError(f"{self.filename!r} is {_article(self.kind)} {self.kind} file, not an "
                             "image; use read() or save()")
        return _open_image(self.read())

    def save(self, directory: str | os.PathLike[str], *, name: str | None = None,
             overwrite: bool = False) -> Path:
        """Write the file into ``directory`` and return its path.

        The name is ``name`` or the server's filename, reduced to a safe basename. An existing
        file is never replaced unless ``overwrite``: ``name (1).ext``, ``name (2).ext``… are
        used instead. The write is atomic. PNGs gain the workflow as a ``prompt`` chunk when
        they lack one.
        """
        owner = self._owner()
        data = owner._prepare(self, self.read())
        path = _write_file(directory, name if name is not None else self.filename, data,
                           overwrite=overwrite)
        owner._remember(self, path)
        return path

    async def asave(self, directory: str | os.PathLike[str], *, name: str | None = None,
                    overwrite: bool = False) -> Path:
        """:meth:`save`, downloading without blocking the event loop."""
        owner = self._owner()
        raw = await self.aread()
        path = await asyncio.to_thread(
            lambda: _write_file(directory, name if name is not None else self.filename,
                                owner._prepare(self, raw), overwrite=overwrite))
        owner._remember(self, path)
        return path


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _open_image(data: bytes) -> Image.Image:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
        first = image.copy()
        first.info = dict(image.info)
        return first
    image.load()
    return image


# -- the result ----------------------------------------------------------------------------------

_FileKey = tuple[str, str, str, str]


def _file_key(file: OutputFile) -> _FileKey:
    return (file.node_id, file.filename, file.subfolder, file.type)


class Result:
    """Everything one prompt produced: files (lazily downloaded) and text.

    ``files`` holds every item of every output key whose value is a list of dicts with a
    ``filename``, de-duplicated on ``(node_id, filename, subfolder, type)``, in the order of the
    outputs' nodes and then of their keys. ``text`` holds the ``text`` outputs per node,
    ``{node_id: [str, ...]}``; ``texts`` all of them in one list.
    """

    def __init__(self, prompt_id: str, outputs: dict[str, Any], *, source: FileSource | None,
                 workflow: dict[str, Any] | None = None, cache_dir: Path | None = None,
                 status: str = "succeeded", server: str | None = None,
                 provenance: dict[str, Any] | None = None, from_cache: bool = False,
                 cached_at: float | None = None) -> None:
        self.prompt_id = prompt_id
        self.outputs = outputs
        self.workflow = workflow
        self.source = source
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.status = status
        self.server = server
        self.provenance = provenance  # see comfy_nb.provenance; written with every saved file
        #: served by the result cache (comfy_nb.cache) instead of a run on the server
        self.from_cache = from_cache
        #: when the cached run was stored (seconds since the epoch); None unless from_cache
        self.cached_at = cached_at
        self._cache: dict[_FileKey, bytes] = {}
        self._lock = threading.Lock()
        #: where each file was last written by a save method, keyed like ``_file_key``
        self.saved_paths: dict[_FileKey, Path] = {}
        self.files: list[OutputFile] = []
        self.text: dict[str, list[str]] = {}
        self._parse(outputs if isinstance(outputs, dict) else {})

    # -- parsing -------------------------------------------------------------------------------

    def _title(self, node_id: str) -> str | None:
        node = self.workflow.get(node_id) if isinstance(self.workflow, dict) else None
        meta = node.get("_meta") if isinstance(node, dict) else None
        title = meta.get("title") if isinstance(meta, dict) else None
        return title if isinstance(title, str) else None

    def _parse(self, outputs: dict[str, Any]) -> None:
        seen: set[_FileKey] = set()
        for node_key, node_output in outputs.items():
            if not isinstance(node_output, dict):
                continue
            node_id = str(node_key)
            flags = node_output.get("animated")
            for key, items in node_output.items():
                if key == "animated" or not isinstance(items, list):
                    continue
                files = [item for item in items
                         if isinstance(item, dict) and isinstance(item.get("filename"), str)]
                if key == "text":
                    strings = [item if isinstance(item, str) else json.dumps(item)
                               for item in items if not isinstance(item, dict) and item is not None]
                    if strings:
                        self.text.setdefault(node_id, []).extend(strings)
                for index, item in enumerate(files):
                    file = self._make_file(node_id, key, item, _animated(flags, index, len(files)))
                    if _file_key(file) not in seen:
                        seen.add(_file_key(file))
                        self.files.append(file)

    def _make_file(self, node_id: str, key: str, item: dict[str, Any], flag: bool) -> OutputFile:
        filename = item["filename"]
        subfolder = item.get("subfolder")
        kind, mime = _kind_and_mime(filename, key)
        animated = flag or (key == "gifs" and kind in ("image", "video"))
        return OutputFile(
            node_id=node_id, filename=filename,
            subfolder="" if subfolder is None else str(subfolder),
            type=str(item.get("type") or "output"), key=key, kind=kind, mime_type=mime,
            animated=animated, node_title=self._title(node_id), _result=self)

    # -- views ---------------------------------------------------------------------------------

    @property
    def images(self) -> list[OutputFile]:
        """Image files (saved outputs and temp previews; animated WebP/PNG included)."""
        return [f for f in self.files if f.kind == "image"]

    @property
    def videos(self) -> list[OutputFile]:
        """Video files."""
        return [f for f in self.files if f.kind == "video"]

    @property
    def audio(self) -> list[OutputFile]:
        """Audio files."""
        return [f for f in self.files if f.kind == "audio"]

    @property
    def texts(self) -> list[str]:
        """Every text output in one list, node after node in the order of the outputs (``text``
        holds the same strings per node: ``{node_id: [str, ...]}``)."""
        return [string for strings in self.text.values() for string in strings]

    def pil_images(self) -> list[Image.Image]:
        """Every image as a Pillow image (downloads what is not cached yet)."""
        return [f.image() for f in self.images]

    def __iter__(self) -> Iterator[OutputFile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def _repr_mimebundle_(self, include: Collection[str] | None = None,
                          exclude: Collection[str] | None = None,
                          **kwargs: Any) -> dict[str, Any]:
        """Thumbnails, an HTML gallery and a text summary for Jupyter (see comfy_nb.notebook)."""
        # imported here, so that importing result.py never loads the notebook stack
        from .notebook.display import render_result

        return render_result(self, include, exclude)

    @property
    def _ipython_display_(self) -> Callable[[], None]:
        """IPython asks for this before anything else: it exists (and shows nothing) only while
        the result is a cell's value whose gallery is on screen already (a progress panel became
        it), so the cell shows the result once. Absent, IPython renders the mimebundle."""
        from .notebook.display import already_on_screen

        if not already_on_screen(self):
            raise AttributeError("_ipython_display_")
        return _show_nothing

    def __repr__(self) -> str:
        pid = self.prompt_id if len(self.prompt_id) <= 9 else self.prompt_id[:8] + "…"
        parts: list[str] = [] if self.status == "succeeded" else [self.status]
        counts: dict[str, int] = {}
        for f in self.files:
            counts[f.kind] = counts.get(f.kind, 0) + 1
        for kind, one, many in (("image", "image", "images"), ("video", "video", "videos"),
                                ("audio", "audio", "audio"), ("model3d", "3D model", "3D models"),
                                ("other", "other file", "other files")):
            if counts.get(kind):
                parts.append(f"{counts[kind]} {one if counts[kind] == 1 else many}")
        if self.text:
            parts.append(f"text from {len(self.text)} node{'' if len(self.text) == 1 else 's'}")
        if not self.files and not self.text:
            parts.append("no outputs")
        if self.from_cache:
            parts.append("from cache")
        return f"<Result {pid} {', '.join(parts)}>"

    # -- bytes ---------------------------------------------------------------------------------

    def _cache_path(self, file: OutputFile) -> Path | None:
        if self.cache_dir is None:
            return None
        ident = "\x00".join((self.server or "", self.prompt_id, file.node_id, file.type,
                             file.subfolder, file.filename))
        return self.cache_dir / hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()

    def _source(self) -> FileSource:
        if self.source is None:
            raise RuntimeError(f"Result {self.prompt_id} has no file source, so its files "
                               "cannot be downloaded")
        return self.source

    def _cached(self, file: OutputFile) -> bytes | None:
        with self._lock:
            data = self._cache.get(_file_key(file))
        if data is not None:
            return data
        path = self._cache_path(file)
        if path is not None:
            try:
                data = path.read_bytes()
            except OSError:
                return None
            with self._lock:
                self._cache[_file_key(file)] = data
        return data

    def _store(self, file: OutputFile, data: Any) -> bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"the file source returned {type(data).__name__}, not bytes, "
                            f"for {file.filename!r}")
        data = bytes(data)
        with self._lock:
            self._cache[_file_key(file)] = data
        path = self._cache_path(file)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                _atomic_write(path, data, overwrite=True)
            except OSError as exc:
                warnings.warn(f"comfy_nb: could not write the download cache ({exc})",
                              RuntimeWarning, stacklevel=4)
        return data

    def _read(self, file: OutputFile) -> bytes:
        data = self._cached(file)
        if data is None:
            data = self._store(file, self._source().fetch(file))
        return data

    async def _aread(self, file: OutputFile) -> bytes:
        data = self._cached(file)
        if data is None:
            data = await asyncio.to_thread(self._store, file, await self._source().afetch(file))
        return data

    def saved_path(self, file: OutputFile) -> Path | None:
        """Where ``file`` was last written by a save method of this result, or None."""
        return self.saved_paths.get(_file_key(file))

    def _remember(self, file: OutputFile, path: Path) -> None:
        """Note where ``file`` went; files that cannot carry text chunks get a sidecar."""
        with self._lock:
            self.saved_paths[_file_key(file)] = path
        if file.mime_type != "image/png" and (self.workflow or self.provenance):
            provenance.write_sidecar(path, self.workflow, self.provenance)

    def _prepare(self, file: OutputFile, data: bytes) -> bytes:
        """The bytes to write to disk: PNGs gain the workflow (``prompt``) and the provenance
        (``comfy_nb``) as text chunks when they lack them."""
        if file.mime_type == "image/png":
            return provenance.png_with_provenance(data, self.workflow, self.provenance)
        return data

    # -- saving --------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
        """Save every file into ``directory`` (see :meth:`OutputFile.save`); the paths in order.

        Everything is downloaded before the first write, so a failed download writes nothing.
        Files of this call never replace each other, even with ``overwrite``.
        """
        files = list(self.files)
        return self._write_all(directory, files, [f.read() for f in files], overwrite)

    def _write_all(self, directory: str | os.PathLike[str], files: list[OutputFile],
                   blobs: list[bytes], overwrite: bool) -> list[Path]:
        written: set[Path] = set()
        paths = []
        for file, data in zip(files, blobs, strict=True):
            path = _write_file(directory, file.filename, self._prepare(file, data),
                               overwrite=overwrite, reserved=written)
            written.add(path)
            paths.append(path)
            self._remember(file, path)
        return paths

    async def asave(self, directory: str | os.PathLike[str], *,
                    overwrite: bool = False) -> list[Path]:
        """:meth:`save`: downloads run concurrently, files are written in order off the loop."""
        limit = asyncio.Semaphore(4)

        async def fetch(file: OutputFile) -> bytes:
            async with limit:
                return await file.aread()

        files = list(self.files)
        blobs = await asyncio.gather(*(fetch(f) for f in files))

        return await asyncio.to_thread(self._write_all, directory, files, blobs, overwrite)


def _show_nothing() -> None:
    """What a cell's value shows when it is on screen already."""


def _animated(flags: Any, index: int, count: int) -> bool:
    """ComfyUI sends ``"animated": [true]`` for a node (one flag, or one per file)."""
    if not isinstance(flags, (list, tuple)) or not flags:
        return False
    if len(flags) == count:
        return flags[index] is True
    return any(flag is True for flag in flags)


# -- safe names and atomic writes ----------------------------------------------------------------

_MAX_NAME_BYTES = 200  # leaves room for " (NNNN)" and the 255-byte limit of most filesystems
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.I)
_UNSAFE_CHARS = re.compile(r'[<>:"|?*]')


def shown_path(path: Path) -> str:
    """``path`` relative to the current directory when it is below it, else absolute (how
    tables and captions name a saved file)."""
    try:
        relative = os.path.relpath(path, os.getcwd())
    except (ValueError, OSError):
        return str(path)
    return str(path) if relative.startswith("..") else relative


def safe_filename(name: str, *, fallback: str = "output") -> str:
    """A basename that is safe to create in a directory, derived from an untrusted ``name``.

    Directory parts (``/``, ``\\``, drive letters) are dropped; control characters and
    characters Windows forbids become ``_``; leading dots and trailing dots/spaces are removed;
    it is never empty, ``.`` or ``..``; it is at most 200 UTF-8 bytes, keeping the extension.
    """
    text = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    text = re.sub(r"^[A-Za-z]:", "", text)
    text = "".join("_" if unicodedata.category(ch) in ("Cc", "Cs", "Cf") else ch for ch in text)
    text = _UNSAFE_CHARS.sub("_", text)
    text = text.lstrip(". ").rstrip(". ")
    if not text:
        text = fallback
    if _WINDOWS_RESERVED.match(text):
        text = "_" + text
    stem, ext = os.path.splitext(text)
    if len(ext.encode("utf-8")) > 16:
        stem, ext = text, ""
    room = _MAX_NAME_BYTES - len(ext.encode("utf-8"))
    stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(". ") or fallback
    return stem + ext


def _create_temp(directory: Path) -> tuple[int, Path]:
    """A new, empty, hidden temp file in ``directory`` (mode 0666 minus the umask)."""
    for _ in range(100):
        path = directory / f".comfy_nb-{secrets.token_hex(8)}.part"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory}")


_O_BINARY = getattr(os, "O_BINARY", 0)


def _atomic_write(target: Path, data: bytes, *, overwrite: bool) -> bool:
    """Write ``data`` to ``target`` through a temp file in the same directory.

    With ``overwrite`` the target is replaced; without it the target must not exist (returns
    False and writes nothing if it does). Nothing is left behind on failure.
    """
    fd, tmp = _create_temp(target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, target)
            return True
        try:
            os.link(tmp, target)  # atomic and never replaces an existing file
        except FileExistsError:
            return False
        except OSError:  # no hard links here (FAT, some shares): reserve the name, then replace
            try:
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                return False
            try:
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    target.unlink()
                raise
        return True
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def folder_problem(directory: str | os.PathLike[str]) -> str | None:
    """Why files cannot be saved into ``directory`` (made if missing), or None; nothing is
    created. ``"is a file, not a folder"``, ``"afile is a file, not a folder"`` (a folder above
    it), ``"cannot be written to (permission denied)"``."""
    found = _folder_check(Path(directory))
    return found[1] if found is not None else None


def _folder_check(path: Path) -> tuple[type[OSError], str] | None:
    for current in (path, *path.parents):
        if current.is_dir():
            if os.access(current, os.W_OK | os.X_OK):
                return None
            where = "cannot be written to" if current == path else f"cannot be made in {current}"
            return PermissionError, f"{where} (permission denied)"
        if current.exists() or current.is_symlink():
            what = "is a file" if current.is_file() else "exists"
            subject = "" if current == path else f"{current} "
            return NotADirectoryError, f"{subject}{what}, not a folder"
    return None


def _write_file(directory: str | os.PathLike[str], name: str, data: bytes, *, overwrite: bool,
                reserved: set[Path] | None = None) -> Path:
    folder = Path(directory)
    problem = _folder_check(folder)
    if problem is not None:
        error, reason = problem
        raise error(f"cannot save into {os.fspath(directory)!r}: {reason}")
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    base = safe_filename(name)
    stem, ext = os.path.splitext(base)
    for counter in range(10_000):
        candidate = root / (base if counter == 0 else f"{stem} ({counter}){ext}")
        if candidate.parent != root or candidate.name in ("", ".", ".."):
            raise ValueError(f"refusing to write {name!r} outside {root}")
        if reserved and candidate in reserved:
            continue
        if candidate.is_symlink() or candidate.is_dir():
            continue
        candidate.resolve().relative_to(root)  # ValueError if it would escape the directory
        if overwrite:
            _atomic_write(candidate, data, overwrite=True)
            return candidate
        if candidate.exists():
            continue
        if _atomic_write(candidate, data, overwrite=False):
            return candidate
    raise FileExistsError(f"no free name for {base!r} in {root}")


# -- PNG metadata --------------------------------------------------------------------------------


def add_png_prompt(data: bytes, workflow: dict[str, Any]) -> bytes:
    """``data`` with ``json.dumps(workflow)`` as a ``prompt`` tEXt chunk, as ComfyUI writes it
    (unchanged when it has one already, or is not a well-formed PNG)."""
    return provenance.png_with_provenance(data, workflow, None)
