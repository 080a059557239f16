"""The outputs of one finished prompt: :class:`Result` and its :class:`OutputFile` items.

Owns: turning a history/jobs ``outputs`` mapping into typed files (kind, MIME type, animated),
text outputs, where a file's bytes come from (memory, the download cache, the source), and
saving them (through :mod:`comfy_nb._saving`: safe names inside the target directory, no
overwrite, identical files kept rather than copied again, the ``prompt`` PNG chunk ComfyUI writes
and the provenance).

Bytes travel through files: saving a file of any size costs a bounded amount of memory. They are
held in memory only for :meth:`OutputFile.read` (files up to :data:`KEEP_IN_MEMORY` bytes are
kept for the next read; larger ones are read again from the download cache or the source).
Every file is checked against its kind before it is handed out or saved: an HTML page sent for
``a.png`` raises :class:`~comfy_nb.client.UnexpectedContent` and is never saved.

Must not: speak HTTP or touch widgets. Bytes arrive only through a :class:`FileSource` that the
client implements. The server's ``filename``/``subfolder`` are untrusted and never become paths
without :func:`safe_filename`; characters no encoding can hold (lone surrogates, as a JSON
``"\\udc80"`` escape gives) are replaced when the outputs are read, so every later use of a
name (a request, a file name, a cache entry, a caption) sees the same, encodable text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

from . import _content, _saving, provenance
from ._content import MEDIA_KINDS, OutputKind
from ._naming import FileKey, file_key, stated_title
from ._saving import folder_problem, safe_filename, shown_path

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["KEEP_IN_MEMORY", "MEDIA_KINDS", "FileSource", "OutputFile", "OutputKind", "Result",
           "add_png_prompt",
           "afetch_into", "fetch_into", "folder_problem", "safe_filename", "shown_path"]

#: files up to this many bytes stay in memory after :meth:`OutputFile.read`
KEEP_IN_MEMORY = 16 * 1024 * 1024

# -- the protocol the client implements ----------------------------------------------------------


@runtime_checkable
class FileSource(Protocol):
    """Where the files of a :class:`Result` come from: the client (``/view`` or a signed URL),
    a result-cache entry, a recording.

    ``fetch_to``/``afetch_to`` stream a file to disk and are what saving uses; every source of
    this package has them. A source with only ``fetch``/``afetch`` still works: its bytes then
    pass through memory."""

    def fetch(self, file: OutputFile) -> bytes:
        """The file's bytes (blocking)."""
        ...

    async def afetch(self, file: OutputFile) -> bytes:
        """The file's bytes."""
        ...

    def fetch_to(self, file: OutputFile, path: Path) -> None:
        """Put the file's bytes into ``path``, an empty file the caller made (blocking). On
        failure ``path`` may hold part of them; the caller removes it."""
        ...

    async def afetch_to(self, file: OutputFile, path: Path) -> None:
        """:meth:`fetch_to` without blocking the event loop."""
        ...


def _as_bytes(file: OutputFile, data: Any) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"the file source returned {type(data).__name__}, not bytes, "
                        f"for {file.filename!r}")
    return bytes(data)


def fetch_into(source: FileSource, file: OutputFile, path: Path) -> None:
    """Put ``file``'s bytes from ``source`` into the existing file ``path``: streamed by
    ``fetch_to``, or through memory for a source that has only ``fetch``."""
    fetch_to = getattr(source, "fetch_to", None)
    if callable(fetch_to):
        fetch_to(file, path)
    else:
        _saving.write_into(path, _as_bytes(file, source.fetch(file)))


async def afetch_into(source: FileSource, file: OutputFile, path: Path) -> None:
    """:func:`fetch_into` without blocking the event loop."""
    afetch_to = getattr(source, "afetch_to", None)
    if callable(afetch_to):
        await afetch_to(file, path)
    else:
        data = _as_bytes(file, await source.afetch(file))
        await asyncio.to_thread(_saving.write_into, path, data)


def _encodable(text: str) -> str:
    """``text`` with each lone surrogate (which no encoding can write) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


# -- one file ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputFile:
    """One file a node produced, as the server described it.

    ``filename``, ``subfolder`` and ``type`` are kept as the server sent them (lone surrogates
    aside, see the module's docstring; use :meth:`params` for ``/view``); they are never used
    as local paths. Files made by a :class:`Result` are bound to it, so :meth:`read`,
    :meth:`open`, :meth:`image` and :meth:`save` work.
    """

    node_id: str
    filename: str
    subfolder: str
    type: str
    key: str
    kind: str  # an OutputKind (a str: ``file.kind == "image"`` holds too)
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
        """The file's bytes, downloaded on first use (kept in memory when small)."""
        return self._owner()._read(self)

    async def aread(self) -> bytes:
        """:meth:`read` without blocking the event loop."""
        return await self._owner()._aread(self)

    def open(self) -> BinaryIO:
        """The file's bytes as a binary file open for reading (use it in ``with``): from the
        download cache, or from a temporary file that goes when it is closed, so a large file
        never has to fit in memory."""
        return self._owner()._open(self)

    def image(self) -> Image.Image:
        """The picture as a Pillow image (the first frame of an animation)."""
        if self.kind != OutputKind.IMAGE:
            raise ValueError(f"{self.filename!r} is {_article(self.kind)} {self.kind} file, not an "
                             "image; use read() or save()")
        return _open_image(self.read())

    def save(self, directory: str | os.PathLike[str], *, name: str | None = None,
             overwrite: bool = False) -> Path:
        """Write the file into ``directory`` and return its path.

        The name is ``name`` or the server's filename, reduced to a safe basename. Another
        file is never replaced unless ``overwrite``: ``name (1).ext``, ``name (2).ext``… are
        used instead, and a file there with the same content is kept (its path is returned)
        instead of written again. The write is atomic. PNGs gain the workflow as a ``prompt``
        chunk when they lack one; other files get a ``.comfy_nb.json`` sidecar with the same
        name rules.
        """
        owner = self._owner()
        return owner._save([self], directory, overwrite, name)[0]

    async def asave(self, directory: str | os.PathLike[str], *, name: str | None = None,
                    overwrite: bool = False) -> Path:
        """:meth:`save`, downloading without blocking the event loop."""
        owner = self._owner()
        return (await owner._asave([self], directory, overwrite, name))[0]


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


class _TemporaryFile(io.FileIO):
    """A temporary file open for reading that is removed when it is closed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "rb")
        self._path = path

    def close(self) -> None:
        try:
            super().close()
        finally:
            with contextlib.suppress(OSError):
                self._path.unlink()


# -- the result ----------------------------------------------------------------------------------

class Result:
    """Everything one prompt produced: files (lazily downloaded) and text.

    ``files`` holds every item of every output key whose value is a list of dicts with a
    ``filename``, de-duplicated on ``(node_id, filename, subfolder, type)``, in the order of the
    outputs' nodes and then of their keys. ``text`` holds the ``text`` outputs per node,
    ``{node_id: [str, ...]}``; ``texts`` all of them in one list.
    ``cache_dir`` is the download cache: a file is downloaded into it once and read from it
    afterwards (without one, each use asks the source again, unless the bytes are in memory).
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
        self._memory: dict[FileKey, bytes] = {}  # bytes read() kept (small files only)
        self._lock = threading.Lock()
        #: where each file was last written by a save method, keyed by its ``file_key``
        self.saved_paths: dict[FileKey, Path] = {}
        self.files: list[OutputFile] = []
        self.text: dict[str, list[str]] = {}
        self._parse(outputs if isinstance(outputs, dict) else {})

    # -- parsing -------------------------------------------------------------------------------

    def _parse(self, outputs: dict[str, Any]) -> None:
        seen: set[FileKey] = set()
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
                    if file_key(file) not in seen:
                        seen.add(file_key(file))
                        self.files.append(file)

    def _make_file(self, node_id: str, key: str, item: dict[str, Any], flag: bool) -> OutputFile:
        filename = _encodable(item["filename"])
        subfolder = item.get("subfolder")
        kind, mime = _content.kind_and_mime(filename, key)
        animated = flag or (key == "gifs" and kind in (OutputKind.IMAGE, OutputKind.VIDEO))
        workflow = self.workflow if isinstance(self.workflow, dict) else {}
        title = stated_title(workflow.get(node_id))
        return OutputFile(
            node_id=_encodable(node_id), filename=filename,
            subfolder="" if subfolder is None else _encodable(str(subfolder)),
            type=_encodable(str(item.get("type") or "output")), key=key, kind=kind,
            mime_type=mime, animated=animated, node_title=title, _result=self)

    # -- views ---------------------------------------------------------------------------------

    @property
    def images(self) -> list[OutputFile]:
        """Image files (saved outputs and temp previews; animated WebP/PNG included)."""
        return [f for f in self.files if f.kind == OutputKind.IMAGE]

    @property
    def videos(self) -> list[OutputFile]:
        """Video files."""
        return [f for f in self.files if f.kind == OutputKind.VIDEO]

    @property
    def audio(self) -> list[OutputFile]:
        """Audio files."""
        return [f for f in self.files if f.kind == OutputKind.AUDIO]

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
        for kind, one, many in ((OutputKind.IMAGE, "image", "images"),
                                (OutputKind.VIDEO, "video", "videos"),
                                (OutputKind.AUDIO, "audio", "audio"),
                                (OutputKind.MODEL3D, "3D model", "3D models"),
                                (OutputKind.OTHER, "other file", "other files")):
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

    def _in_memory(self, file: OutputFile) -> bytes | None:
        with self._lock:
            return self._memory.get(file_key(file))

    def _keep(self, file: OutputFile, data: bytes) -> None:
        if len(data) <= KEEP_IN_MEMORY:
            with self._lock:
                self._memory[file_key(file)] = data

    @staticmethod
    def _check(file: OutputFile, path: Path) -> None:
        _content.check_file(file.filename, file.kind, path)

    def _cache_slot(self, file: OutputFile) -> tuple[Path, Path] | None:
        """``(temp file, final path)`` in the download cache for a file not in it yet; None
        when there is no cache, the file is there, or the cache cannot be written (a warning)."""
        final = self._cache_path(file)
        if final is None or final.is_file():
            return None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            return _saving.new_temp(final.parent), final
        except OSError as exc:
            warnings.warn(f"comfy_nb: could not write the download cache ({exc})",
                          RuntimeWarning, stacklevel=5)
            return None

    def _publish(self, file: OutputFile, temp: Path, final: Path) -> Path:
        self._check(file, temp)
        os.replace(temp, final)
        return final

    def _local(self, file: OutputFile) -> Path | None:
        """The file in the download cache (downloaded into it first when missing), or None
        without a usable cache."""
        slot = self._cache_slot(file)
        if slot is None:
            final = self._cache_path(file)
            return final if final is not None and final.is_file() else None
        temp, final = slot
        try:
            fetch_into(self._source(), file, temp)
            return self._publish(file, temp, final)
        finally:
            temp.unlink(missing_ok=True)

    async def _alocal(self, file: OutputFile) -> Path | None:
        slot = await asyncio.to_thread(self._cache_slot, file)
        if slot is None:
            final = self._cache_path(file)
            return final if final is not None and final.is_file() else None
        temp, final = slot
        try:
            await afetch_into(self._source(), file, temp)
            return await asyncio.to_thread(self._publish, file, temp, final)
        finally:
            temp.unlink(missing_ok=True)

    def _fetched_bytes(self, file: OutputFile, data: Any) -> bytes:
        data = _as_bytes(file, data)
        _content.check(file.filename, file.kind, data)
        return data

    def _read(self, file: OutputFile) -> bytes:
        data = self._in_memory(file)
        if data is None:
            local = self._local(file)
            data = (local.read_bytes() if local is not None
                    else self._fetched_bytes(file, self._source().fetch(file)))
            self._keep(file, data)
        return data

    async def _aread(self, file: OutputFile) -> bytes:
        data = self._in_memory(file)
        if data is None:
            local = await self._alocal(file)
            data = (await asyncio.to_thread(local.read_bytes) if local is not None
                    else self._fetched_bytes(file, await self._source().afetch(file)))
            self._keep(file, data)
        return data

    def _open(self, file: OutputFile) -> BinaryIO:
        data = self._in_memory(file)
        if data is not None:
            return io.BytesIO(data)
        local = self._local(file)
        if local is not None:
            return open(local, "rb")
        if not callable(getattr(self._source(), "fetch_to", None)):
            return io.BytesIO(self._read(file))  # its bytes come through memory anyway
        handle, name = tempfile.mkstemp(prefix=".comfy_nb-", suffix=".part")
        os.close(handle)
        temp = Path(name)
        try:
            self._fill(file, temp)
            return _TemporaryFile(temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def _fill(self, file: OutputFile, target: Path) -> None:
        """Put the file's checked bytes into ``target`` (an existing empty file)."""
        data = self._in_memory(file)
        if data is not None:
            _saving.write_into(target, data)
            return
        local = self._local(file)
        if local is not None:
            _saving.copy_into(local, target)
            return
        fetch_into(self._source(), file, target)
        self._check(file, target)

    async def _afill(self, file: OutputFile, target: Path) -> None:
        data = self._in_memory(file)
        if data is not None:
            await asyncio.to_thread(_saving.write_into, target, data)
            return
        local = await self._alocal(file)
        if local is not None:
            await asyncio.to_thread(_saving.copy_into, local, target)
            return
        await afetch_into(self._source(), file, target)
        await asyncio.to_thread(self._check, file, target)

    def saved_path(self, file: OutputFile) -> Path | None:
        """Where ``file`` was last written by a save method of this result, or None."""
        return self.saved_paths.get(file_key(file))

    def _remember(self, file: OutputFile, path: Path) -> None:
        with self._lock:
            self.saved_paths[file_key(file)] = path

    # -- saving --------------------------------------------------------------------------------

    def _sidecar(self, file: OutputFile) -> _saving.Companion | None:
        """The provenance sidecar of a file that cannot carry it in text chunks."""
        if file.mime_type == "image/png" or not (self.workflow or self.provenance):
            return None
        return _saving.Companion(provenance.SIDECAR_SUFFIX,
                                 provenance.sidecar_bytes(self.workflow, self.provenance))

    def _prepare(self, file: OutputFile, staged: Path, staging: _saving.Staging) -> Path:
        """The staged file as it is to be saved: PNGs gain the workflow (``prompt``) and the
        provenance (``comfy_nb``) as text chunks when they lack them (copied through a second
        staged file, a chunk at a time)."""
        entries = provenance.provenance_entries(self.workflow, self.provenance)
        if file.mime_type != "image/png" or not entries:
            return staged
        with open(staged, "rb") as reader:
            insertion = provenance.png_text_insertion(
                reader, os.fstat(reader.fileno()).st_size, entries)
            if insertion is None:
                return staged
            at, chunks = insertion
            prepared = staging.new_path()
            reader.seek(0)
            with open(prepared, "r+b") as writer:
                _saving.copy_range(reader, writer, at)
                writer.write(chunks)
                _saving.copy_range(reader, writer, None)
        staging.discard(staged)
        return prepared

    def _stage(self, file: OutputFile, staging: _saving.Staging) -> Path:
        staged = staging.new_path()
        self._fill(file, staged)
        return self._prepare(file, staged, staging)

    async def _astage(self, file: OutputFile, staging: _saving.Staging) -> Path:
        staged = await asyncio.to_thread(staging.new_path)
        await self._afill(file, staged)
        return await asyncio.to_thread(self._prepare, file, staged, staging)

    def _place_all(self, staging: _saving.Staging, files: list[OutputFile], staged: list[Path],
                   overwrite: bool, name: str | None) -> list[Path]:
        """Name every staged file; files of one call never take each other's names (nor their
        sidecars'), even with ``overwrite``."""
        reserved: set[Path] = set()
        paths = []
        for file, temp in zip(files, staged, strict=True):
            sidecar = self._sidecar(file)
            path = staging.place(name if name is not None else file.filename, temp,
                                 overwrite=overwrite, reserved=reserved, companion=sidecar)
            reserved.add(path)
            if sidecar is not None:
                reserved.add(sidecar.path(path))
            paths.append(path)
            self._remember(file, path)
        return paths

    def _chosen(self, files: Iterable[OutputFile] | None) -> list[OutputFile]:
        chosen = list(self.files if files is None else files)
        for file in chosen:
            if file._result is not self:
                raise ValueError(f"{file.filename!r} is not a file of this result")
        return chosen

    def save(self, directory: str | os.PathLike[str], *, overwrite: bool = False,
             files: Iterable[OutputFile] | None = None) -> list[Path]:
        """Save every file (or only ``files``, from :attr:`files`) into ``directory`` (see
        :meth:`OutputFile.save`); the paths in order.

        Every file is downloaded (streamed to a hidden temp file there) and checked before the
        first is named, so a failed download writes nothing. Files of this call never replace
        each other, even with ``overwrite``.
        """
        return self._save(self._chosen(files), directory, overwrite, None)

    async def asave(self, directory: str | os.PathLike[str], *, overwrite: bool = False,
                    files: Iterable[OutputFile] | None = None) -> list[Path]:
        """:meth:`save`: downloads run concurrently, files are written in order off the loop."""
        return await self._asave(self._chosen(files), directory, overwrite, None)

    def _save(self, files: list[OutputFile], directory: str | os.PathLike[str],
              overwrite: bool, name: str | None) -> list[Path]:
        with _saving.Staging(directory) as staging:
            staged = [self._stage(file, staging) for file in files]
            return self._place_all(staging, files, staged, overwrite, name)

    async def _asave(self, files: list[OutputFile], directory: str | os.PathLike[str],
                     overwrite: bool, name: str | None) -> list[Path]:
        staging = await asyncio.to_thread(_saving.Staging, directory)
        limit = asyncio.Semaphore(4)

        async def stage(file: OutputFile) -> Path:
            async with limit:
                return await self._astage(file, staging)

        try:
            # every download ends before the staging folder is cleaned up
            outcomes = await asyncio.gather(*(stage(file) for file in files),
                                            return_exceptions=True)
            staged: list[Path] = []
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
                staged.append(outcome)
            return await asyncio.to_thread(self._place_all, staging, files, staged, overwrite,
                                           name)
        finally:
            staging.close()


def _show_nothing() -> None:
    """What a cell's value shows when it is on screen already."""


def _animated(flags: Any, index: int, count: int) -> bool:
    """ComfyUI sends ``"animated": [true]`` for a node (one flag, or one per file)."""
    if not isinstance(flags, (list, tuple)) or not flags:
        return False
    if len(flags) == count:
        return flags[index] is True
    return any(flag is True for flag in flags)


# -- PNG metadata --------------------------------------------------------------------------------


def add_png_prompt(data: bytes, workflow: dict[str, Any]) -> bytes:
    """``data`` with ``json.dumps(workflow)`` as a ``prompt`` tEXt chunk, as ComfyUI writes it
    (unchanged when it has one already, or is not a well-formed PNG)."""
    return provenance.png_with_provenance(data, workflow, None)
