"""Inline rendering of a :class:`~comfy_nb.result.Result` in notebooks.

Owns: :data:`settings` (thumbnail size and format, how many items show inline, what is embedded,
where full-size files go), the mimebundle of a result (:func:`render_result`: ``text/plain``, an
HTML gallery that still reads when a viewer strips CSS, and a PNG/JPEG thumbnail as the fallback),
thumbnails cached on the result, :func:`save_for_notebook`, and which galleries are already on
screen (:func:`mark_shown`), so a cell's return value does not repeat them.

Must not: speak HTTP (bytes come only from ``OutputFile.read()``/``open()``: a large video is
sized through a file, never held in memory) or create widgets. It may import
``IPython.display`` and Pillow.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import sys
import time
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._naming import file_key
from ..result import MEDIA_KINDS, OutputFile, OutputKind, Result, shown_path

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DisplaySettings", "already_on_screen", "cache_note", "forget_shown", "mark_shown",
           "render_result", "save_for_notebook", "settings"]


@dataclass
class DisplaySettings:
    """How results render inline. ``%config ComfyMagics.<name>`` assigns to :data:`settings`."""

    #: longest side, in pixels, of inline thumbnails (never full resolution)
    thumbnail_size: int = 256
    #: "jpeg" or "png"; images with transparency always get PNG
    thumbnail_format: str = "jpeg"
    #: at most this many thumbnails/players inline; the rest are summarised in one line
    max_items: int = 24
    #: video and audio of at most this many bytes are embedded; larger ones are linked
    embed_limit: int = 5_000_000
    #: where :func:`save_for_notebook` writes full-size files (relative to the current
    #: directory, i.e. next to the notebook); None writes nothing
    output_dir: str | None = "comfy_outputs"


settings = DisplaySettings()

_MAX_FRAMES = 48  # frames of an animated thumbnail
_TEXT_FILES = 10  # files listed in text/plain
_TEXT_CHARS = 20_000  # characters of one text output in the HTML
_CACHE_ATTR = "_comfy_nb_thumbnails"
_GALLERY_STYLE = "display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start"
_shown: weakref.WeakSet[Result] = weakref.WeakSet()  # galleries already on screen this cell


# -- public --------------------------------------------------------------------------------------


def render_result(result: Result, include: Collection[str] | None = None,
                  exclude: Collection[str] | None = None) -> dict[str, Any]:
    """The mimebundle of ``result``: ``text/plain``, ``text/html`` and ``image/jpeg`` (or
    ``image/png``) holding the first image's thumbnail; ``include``/``exclude`` filter it."""

    def wanted(mime: str) -> bool:
        return (include is None or mime in include) and (exclude is None or mime not in exclude)

    bundle: dict[str, Any] = {}
    if wanted("text/html"):  # first: it may save a large video that text names
        bundle["text/html"] = _html(result)
    if wanted("text/plain"):
        bundle["text/plain"] = _plain(result)
    if wanted("image/png") or wanted("image/jpeg"):
        thumb = _first_thumbnail(result)
        if thumb is not None and wanted(thumb.mime):
            bundle[thumb.mime] = thumb.still
    return bundle


def save_for_notebook(result: Result,
                      directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write every file of ``result`` at full resolution into ``directory`` (default
    ``settings.output_dir``) unless it is already saved there; the gallery then links them.

    Returns the paths in the order of ``result.files``. With no directory at all nothing is
    written. Every file is downloaded (streamed to disk) before the first is named: a download
    that fails (a :class:`~comfy_nb.replay.ReplayError` for a damaged recording, an HTML page
    sent for an image) raises and writes nothing, and so does a folder that cannot hold files
    (``OSError``). A file already there with the same content is kept, not copied again.
    """
    target = directory if directory is not None else settings.output_dir
    if target is None:
        return []
    folder = Path(target)
    resolved = folder.resolve()
    paths: list[Path | None] = [_saved(result, file) for file in result.files]
    missing = [index for index, path in enumerate(paths)
               if path is None or path.resolve().parent != resolved]
    if missing:
        saved = result.save(folder, files=[result.files[index] for index in missing])
        for index, path in zip(missing, saved, strict=True):
            paths[index] = path
    return [path for path in paths if path is not None]


def mark_shown(result: Result) -> None:
    """Note that the gallery of ``result`` is on screen already (a progress panel became it):
    until :func:`forget_shown` runs, as the cell's value (IPython's displayhook, ``Out[n]``) it
    shows nothing more; ``display(result)`` still shows the gallery."""
    _shown.add(result)


def already_on_screen(result: Result) -> bool:
    """Whether IPython is showing ``result`` as a cell's value while its gallery is on screen
    already (see :func:`mark_shown`)."""
    return result in _shown and _inside_displayhook()


def _inside_displayhook() -> bool:
    """Whether IPython's displayhook (the cell's ``Out[n]``) is formatting right now."""
    frame = sys._getframe(1)
    for _ in range(30):
        frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            return False
        owner = frame.f_locals.get("self")
        if frame.f_code.co_name == "__call__" and type(owner).__name__.endswith("DisplayHook"):
            return True
    return False


def forget_shown(*_args: object) -> None:
    """Forget every :func:`mark_shown` (an IPython ``post_run_cell`` hook)."""
    _shown.clear()


# -- thumbnails ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Thumbnail:
    still: bytes  # PNG or JPEG, the first frame
    mime: str  # "image/png" or "image/jpeg"
    width: int
    height: int
    gif: bytes | None = None  # the animation, downscaled, for the HTML


def _thumbnail(result: Result, file: OutputFile) -> _Thumbnail:
    """The thumbnail of ``file``, made once per size and format and kept on ``result``."""
    cache: dict[tuple[Any, ...], _Thumbnail] = result.__dict__.setdefault(_CACHE_ATTR, {})
    size, fmt = int(settings.thumbnail_size), str(settings.thumbnail_format).lower()
    key = (*file_key(file), size, fmt)
    if key not in cache:
        cache[key] = _make_thumbnail(file.read(), size, fmt)
    return cache[key]


def _make_thumbnail(data: bytes, size: int, fmt: str) -> _Thumbnail:
    from PIL import Image

    size = max(size, 8)
    with Image.open(io.BytesIO(data)) as image:
        frames = getattr(image, "n_frames", 1)
        image.seek(0)
        still = _downscaled(image, size)
        gif = _animated_gif(image, size, frames) if frames > 1 else None
    lowest = still.getchannel("A").getextrema()[0] if still.mode == "RGBA" else 255
    transparent = isinstance(lowest, (int, float)) and lowest < 255
    buffer = io.BytesIO()
    if transparent or fmt == "png":
        still.save(buffer, "PNG", optimize=True)
        mime = "image/png"
    else:
        still.convert("RGB").save(buffer, "JPEG", quality=85)
        mime = "image/jpeg"
    return _Thumbnail(buffer.getvalue(), mime, still.width, still.height, gif)


def _downscaled(frame: Image.Image, size: int) -> Image.Image:
    """The current frame as RGB or RGBA, fitted into ``size`` x ``size`` (never enlarged)."""
    from PIL import Image

    alpha = frame.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in frame.info
    copy = frame.convert("RGBA" if alpha else "RGB")
    copy.thumbnail((size, size), Image.Resampling.LANCZOS)
    return copy


def _animated_gif(image: Image.Image, size: int, frames: int) -> bytes:
    """A looping GIF of at most ``_MAX_FRAMES`` downscaled frames (every n-th frame)."""
    step = math.ceil(frames / _MAX_FRAMES)
    pictures: list[Image.Image] = []
    durations: list[int] = []
    for index in range(0, frames, step):
        image.seek(index)
        pictures.append(_downscaled(image, size))
        durations.append(max(int(image.info.get("duration") or 100), 20) * step)
    buffer = io.BytesIO()
    pictures[0].save(buffer, "GIF", save_all=True, append_images=pictures[1:],
                     duration=durations, loop=0, disposal=2)
    return buffer.getvalue()


def _first_thumbnail(result: Result) -> _Thumbnail | None:
    """The thumbnail of the first image shown inline that can be decoded."""
    for file in [f for f in result.files if f.kind in MEDIA_KINDS][:max(settings.max_items, 1)]:
        if file.kind == OutputKind.IMAGE:
            try:
                return _thumbnail(result, file)
            except Exception:
                continue
    return None


# -- text ----------------------------------------------------------------------------------------


def cache_note(result: Result) -> str:
    """What a result served by the result cache says about it: since when, and how to run it
    afresh (empty for any other result)."""
    if not result.from_cache:
        return ""
    when = ""
    if result.cached_at is not None:
        when = f" (run on {time.strftime('%Y-%m-%d %H:%M', time.localtime(result.cached_at))})"
    return (f"from the result cache{when}; to run it again on the server: --no-cache "
            "(%%comfy_run, comfy-nb run) or cache=False (client.run)")


def _plain(result: Result) -> str:
    lines = [repr(result)]
    if result.from_cache:
        lines.append(f"  {cache_note(result)}")
    for file in result.files[:_TEXT_FILES]:
        path = _saved(result, file)
        where = f" -> {shown_path(path)}" if path is not None else ""
        lines.append(f"  {_label(result, file.node_id)}/{file.filename}{where}")
    if len(result.files) > _TEXT_FILES:
        lines.append(f"  ... and {len(result.files) - _TEXT_FILES} more")
    texts = list(result.text.items())
    for node_id, strings in texts[:_TEXT_FILES]:
        joined = " ".join(" ".join(strings).split())
        short = joined if len(joined) <= 80 else joined[:79] + "…"
        lines.append(f"  {_label(result, node_id)}: {short}")
    if len(texts) > _TEXT_FILES:
        lines.append(f"  ... and text from {len(texts) - _TEXT_FILES} more nodes")
    return "\n".join(lines)


# -- HTML ----------------------------------------------------------------------------------------


def _html(result: Result) -> str:
    parts = ['<div class="comfy-nb-result">', f"<div>{html.escape(repr(result))}</div>"]
    if result.from_cache:
        parts.append(f'<div class="comfy-nb-cache-note"><small>{html.escape(cache_note(result))}'
                     "</small></div>")
    if result.status != "succeeded":
        parts.append(f'<div class="comfy-nb-status"><strong>Status: '
                     f"{html.escape(result.status)}</strong></div>")
    limit = max(settings.max_items, 0)
    media = [f for f in result.files if f.kind in MEDIA_KINDS]
    others = [f for f in result.files if f.kind not in MEDIA_KINDS]
    if media[:limit]:
        figures = "\n".join(_figure(result, f) for f in media[:limit])
        parts.append(f'<div class="comfy-nb-gallery" style="{_GALLERY_STYLE}">\n{figures}\n</div>')
    parts.extend(_other_line(result, f) for f in others[:limit])
    rest = media[limit:] + others[limit:]
    if rest:
        parts.append(_more_line(result, rest))
    for node_id, strings in result.text.items():
        text = "\n".join(strings)
        if len(text) > _TEXT_CHARS:
            text = text[:_TEXT_CHARS] + f"\n… ({len(text) - _TEXT_CHARS} more characters)"
        parts.append(f'<div class="comfy-nb-text"><strong>{html.escape(_label(result, node_id))}'
                     f"</strong><pre>{html.escape(text)}</pre></div>")
    parts.append("</div>")
    return "\n".join(parts)


def _figure(result: Result, file: OutputFile) -> str:
    """One ``<figure>``: the thumbnail or player, then the node and the file name."""
    path = _saved(result, file)
    try:
        body, path = _media_html(result, file, path)
        problem = ""
    except Exception as exc:
        body, problem = "", f"<br><em>could not be shown: {html.escape(_reason(exc))}</em>"
    name = _name(file, path)
    caption = f"{html.escape(_label(result, file.node_id))}<br>{name}{problem}"
    return (f'<figure style="margin:0 0 8px 0">{body}\n'
            f"<figcaption>{caption}</figcaption></figure>")


def _media_html(result: Result, file: OutputFile, path: Path | None) -> tuple[str, Path | None]:
    """The HTML showing ``file`` and its path on disk (a large video/audio file gets saved)."""
    if file.kind == OutputKind.IMAGE:
        thumb = _thumbnail(result, file)
        mime, data = (thumb.mime, thumb.still) if thumb.gif is None else ("image/gif", thumb.gif)
        img = (f'<img src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}" '
               f'width="{thumb.width}" height="{thumb.height}" alt="{html.escape(file.filename)}">')
        return (f'<a href="{_href(path)}">{img}</a>' if path is not None else img), path
    from IPython.display import Audio, Video

    if path is not None:
        size = path.stat().st_size
    else:  # its size, without holding a large video in memory
        with file.open() as handle:
            size = handle.seek(0, os.SEEK_END)
    if size <= settings.embed_limit:
        data = path.read_bytes() if path is not None else file.read()
        if file.kind == OutputKind.VIDEO:
            width = max(settings.thumbnail_size, 320)
            return Video(data=data, embed=True, mimetype=file.mime_type,
                         width=width)._repr_html_(), path
        audio = Audio(data=data)
        audio.mimetype = file.mime_type
        return audio._repr_html_(), path
    if path is None and settings.output_dir is not None:
        path = file.save(settings.output_dir)
    if path is None:
        return (f"<div>not embedded ({size / 1e6:.1f} MB &gt; embed_limit); save it with "
                "result.save(dir)</div>"), None
    if file.kind == OutputKind.VIDEO:
        return Video(url=_href(path), width=max(settings.thumbnail_size, 320))._repr_html_(), path
    return Audio(url=_href(path), embed=False)._repr_html_(), path


def _other_line(result: Result, file: OutputFile) -> str:
    name = _name(file, _saved(result, file))
    kind = "3D model" if file.kind == OutputKind.MODEL3D else "file"
    return (f'<div class="comfy-nb-file">{html.escape(_label(result, file.node_id))}: {name} '
            f"({kind}, {html.escape(file.mime_type)})</div>")


def _more_line(result: Result, rest: list[OutputFile]) -> str:
    paths = [p for p in (_saved(result, f) for f in rest) if p is not None]
    folders = {shown_path(p.parent) for p in paths}
    where = f" in {html.escape(folders.pop())}" if len(folders) == 1 else ""
    line = f"… and {len(rest)} more file{'' if len(rest) == 1 else 's'}{where}"
    if paths:
        links = ", ".join(f'<a href="{_href(p)}">{html.escape(p.name)}</a>' for p in paths)
        line += f": {links}"
    else:
        line += " (not shown; save them with result.save(dir))"
    return f'<div class="comfy-nb-more">{line}</div>'


# -- helpers -------------------------------------------------------------------------------------


def _label(result: Result, node_id: str) -> str:
    """The node's title, else its class, else ``node <id>``."""
    node = result.workflow.get(node_id) if isinstance(result.workflow, dict) else None
    node = node if isinstance(node, dict) else {}
    meta = node.get("_meta")
    for name in (meta.get("title") if isinstance(meta, dict) else None, node.get("class_type")):
        if isinstance(name, str) and name.strip():
            return name
    return f"node {node_id}"


def _name(file: OutputFile, path: Path | None) -> str:
    """HTML naming ``file``: the file on disk that holds it (linked) once saved, else its name
    on the server."""
    if path is None:
        return html.escape(file.filename)
    return f'<a href="{_href(path)}">{html.escape(path.name)}</a>'


def _saved(result: Result, file: OutputFile) -> Path | None:
    """Where ``file`` was saved, if that file still exists."""
    path = result.saved_path(file)
    return path if path is not None and path.is_file() else None


def _href(path: Path) -> str:
    """A link to ``path`` relative to the current directory (the notebook's), URL-quoted."""
    try:
        relative = os.path.relpath(path, os.getcwd())
    except (ValueError, OSError):
        return path.resolve().as_uri()
    return quote(Path(relative).as_posix())


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return text if len(text) <= 200 else text[:199] + "…"
