"""Writing output files into a folder: safe names, whole files only, never an overwrite.

A file is first *staged*: written in full to a hidden temp file in the target folder
(:class:`Staging`), so that nothing half-written ever carries a real name and a failed batch
leaves nothing behind. :func:`place` then gives it a name: the safe basename, or ``name (1).ext``,
``name (2).ext``… when that is taken by other content. A file already there with the same
content (compared by size, then byte by byte) is kept and named instead of written again, so
re-running a notebook does not pile up copies. A *companion* (a provenance sidecar) is placed
with its file under the file's name plus a suffix, by the same rules: a name whose companion
slot holds something else is skipped, so a file and its sidecar always match.

Owns: :func:`safe_filename`, folder checks, staging, placing, atomic exclusive writes and
chunked copies. Must not: know about results, HTTP or provenance contents. The names it is given
are untrusted: nothing is ever written outside the target folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__ = ["Companion", "Staging", "copy_into", "copy_range", "folder_problem", "new_temp",
           "place", "safe_filename", "same_content", "shown_path", "write_into", "write_new"]

CHUNK = 1 << 20  # bytes per read when copying or comparing files
_MAX_NAME_BYTES = 200  # leaves room for " (NNNN)" and the 255-byte limit of most filesystems
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.I)
_UNSAFE_CHARS = re.compile(r'[<>:"|?*]')
_O_BINARY = getattr(os, "O_BINARY", 0)


# -- names ---------------------------------------------------------------------------------------


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

    Directory parts (``/``, ``\\``, drive letters) are dropped; control characters, lone
    surrogates and characters Windows forbids become ``_``; leading dots and trailing
    dots/spaces are removed; it is never empty, ``.`` or ``..``; it is at most 200 UTF-8 bytes,
    keeping the extension.
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


# -- folders -------------------------------------------------------------------------------------


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


# -- files ---------------------------------------------------------------------------------------


def new_temp(directory: Path) -> Path:
    """A new, empty, hidden temp file in ``directory`` (mode 0666 minus the umask)."""
    for _ in range(100):
        path = directory / f".comfy_nb-{secrets.token_hex(8)}.part"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"could not create a temporary file in {directory}")


def copy_into(source: Path, target: Path) -> None:
    """Copy the bytes of ``source`` into the existing file ``target`` (replacing its content),
    a chunk at a time. ``target`` is never created: a target removed meanwhile (a staging
    folder cleaned up after a failure) raises FileNotFoundError instead of coming back."""
    with open(source, "rb") as reader, open(target, "r+b") as writer:
        writer.truncate(0)
        shutil.copyfileobj(reader, writer, CHUNK)


def copy_range(reader: BinaryIO, writer: BinaryIO, count: int | None) -> None:
    """Copy ``count`` bytes (None: all that is left) from ``reader`` to ``writer``, a chunk at
    a time; EOFError if ``reader`` ends first."""
    while count is None or count > 0:
        chunk = reader.read(CHUNK if count is None else min(CHUNK, count))
        if not chunk:
            if count is None:
                return
            raise EOFError("the file ended early")
        writer.write(chunk)
        if count is not None:
            count -= len(chunk)


def write_into(target: Path, data: bytes) -> None:
    """Write ``data`` into the existing file ``target`` (never creating it; see
    :func:`copy_into`)."""
    with open(target, "r+b") as writer:
        writer.truncate(0)
        writer.write(data)


def same_content(first: Path, second: Path) -> bool:
    """Whether two files hold the same bytes: sizes first, then chunk by chunk (stopping at the
    first difference). Unreadable files are not the same."""
    try:
        if first.stat().st_size != second.stat().st_size:
            return False
        with open(first, "rb") as one, open(second, "rb") as other:
            while True:
                left, right = one.read(CHUNK), other.read(CHUNK)
                if left != right:
                    return False
                if not left:
                    return True
    except OSError:
        return False


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _sync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _link_new(staged: Path, target: Path) -> bool:
    """Give the staged file the name ``target`` if nothing has it (atomic; never replaces);
    False if the name is taken. The staged name is gone afterwards on success."""
    try:
        os.link(staged, target)
    except FileExistsError:
        return False
    except OSError:  # no hard links here (FAT, some shares): reserve the name, then replace
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        try:
            os.replace(staged, target)
        except BaseException:
            with contextlib.suppress(OSError):
                target.unlink()
            raise
        return True
    staged.unlink()
    return True


def write_new(target: Path, data: bytes, *, overwrite: bool = False) -> bool:
    """Write ``data`` to ``target`` through a temp file beside it. Without ``overwrite`` an
    existing target is never replaced (returns False, writes nothing); with it, it is replaced
    atomically. Nothing is left behind on failure."""
    temp = new_temp(target.parent)
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temp, target)
            return True
        return _link_new(temp, target)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


# -- staging and placing -------------------------------------------------------------------------


class Staging:
    """Hidden temp files in ``directory`` for files about to be saved there.

    The folder (and missing folders above it) is made on the first :meth:`new_path`; on
    :meth:`close` every temp file not placed is removed, and so are the folders it made if
    nothing was placed. A folder that cannot hold files raises before anything is made.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        found = _folder_check(self.directory)
        if found is not None:
            error, reason = found
            raise error(f"cannot save into {os.fspath(directory)!r}: {reason}")
        self._root: Path | None = None
        self._made: list[Path] = []
        self._temps: set[Path] = set()
        self._placed = False
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The folder, resolved (made if missing)."""
        with self._lock:
            if self._root is None:
                missing = []
                for current in (self.directory, *self.directory.parents):
                    if current.is_dir():
                        break
                    missing.append(current)
                self.directory.mkdir(parents=True, exist_ok=True)
                self._made = missing
                self._root = self.directory.resolve()
            return self._root

    def new_path(self) -> Path:
        """A new, empty, hidden temp file in the folder."""
        path = new_temp(self.root)
        with self._lock:
            self._temps.add(path)
        return path

    def discard(self, path: Path) -> None:
        """Remove one temp file now."""
        with self._lock:
            self._temps.discard(path)
        with contextlib.suppress(OSError):
            path.unlink()

    def place(self, name: str, staged: Path, *, overwrite: bool, reserved: set[Path],
              companion: Companion | None = None) -> Path:
        """:func:`place` a staged file into the folder; its temp file is consumed."""
        path = place(self.root, name, staged, overwrite=overwrite, reserved=reserved,
                     companion=companion)
        with self._lock:
            self._temps.discard(staged)
            self._placed = True
        return path

    def close(self) -> None:
        with self._lock:
            temps, self._temps = self._temps, set()
            made = [] if self._placed else self._made
        for path in temps:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in made:  # deepest first; a folder someone filled meanwhile stays
            with contextlib.suppress(OSError):
                folder.rmdir()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class Companion:
    """A small file that goes with a placed file: named ``<file name><suffix>``."""

    suffix: str
    data: bytes

    def path(self, file: Path) -> Path:
        return file.with_name(file.name + self.suffix)


def _free_slot(path: Path, reserved: set[Path]) -> bool:
    return path not in reserved and not path.is_symlink() and not path.is_dir()


def _companion_fits(path: Path, data: bytes) -> bool:
    """Whether ``path`` holds ``data`` or was free and now does (written without replacing)."""
    return _same_bytes(path, data) or write_new(path, data) or _same_bytes(path, data)


def place(root: Path, name: str, staged: Path, *, overwrite: bool, reserved: set[Path],
          companion: Companion | None = None) -> Path:
    """Name the complete file ``staged`` (a temp file in ``root``) after ``name`` inside
    ``root``, and return its path; ``staged`` is gone afterwards.

    The first candidate (``name``, then ``name (1)``…) that is not in ``reserved`` (names given
    earlier in the same save), not a symlink or a folder, and whose companion slot is free or
    holds the same companion is taken:

    - with ``overwrite``, the file (and its companion) replace what is there;
    - a file with the same content there is kept (and its companion written if missing);
    - a free name gets the file, then its companion; different content means the next name.
    """
    base = safe_filename(name)
    stem, ext = os.path.splitext(base)
    data = companion.data if companion is not None else b""
    _sync(staged)
    for counter in range(10_000):
        candidate = root / (base if counter == 0 else f"{stem} ({counter}){ext}")
        if candidate.parent != root or candidate.name in ("", ".", ".."):
            raise ValueError(f"refusing to write {name!r} outside {root}")
        side = companion.path(candidate) if companion is not None else None
        if not _free_slot(candidate, reserved) or (side is not None
                                                   and not _free_slot(side, reserved)):
            continue
        candidate.resolve().relative_to(root)  # ValueError if it would escape the directory
        if overwrite:
            os.replace(staged, candidate)
            if side is not None:
                write_new(side, data, overwrite=True)
            return candidate
        if side is not None and side.exists() and not _same_bytes(side, data):
            continue  # the companion's name holds something else: keep the pair together
        if candidate.exists():
            if not same_content(candidate, staged) or (
                    side is not None and not _companion_fits(side, data)):
                continue
            staged.unlink()  # the same content is there already
            return candidate
        if not _link_new(staged, candidate):
            continue  # taken meanwhile
        if side is not None and not _companion_fits(side, data):
            os.replace(candidate, staged)  # another companion appeared meanwhile: take it back
            continue
        return candidate
    raise FileExistsError(f"no free name for {base!r} in {root}")
