"""Byte ranges of served files: a ``Range: bytes=...`` request answered the way aiohttp's
``FileResponse`` answers it (ComfyUI serves ``/view`` files with it): 200 with the whole body and
``Accept-Ranges: bytes`` without a Range; 206 with ``Content-Range: bytes a-b/size`` for one
satisfiable range (``a-b``, ``a-``, ``-n``; an end past the file is cut to it); 416 with
``Content-Range: bytes */size`` and no body for a range that is malformed, names several ranges,
or starts at or past the end.

:func:`ranged` answers from bytes in memory (the v2 dialect's asset content); the local dialect
serves plain ``/view`` files through it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

NOT_SATISFIABLE = 416
PARTIAL = 206


@dataclass(frozen=True)
class ByteRange:
    """The part of a ``size``-byte body a request asked for: ``status`` 200 (all of it), 206
    (``start`` .. ``start + count``) or 416 (none)."""

    status: int
    start: int
    count: int
    size: int

    @property
    def content_range(self) -> str | None:
        if self.status == NOT_SATISFIABLE:
            return f"bytes */{self.size}"
        if self.status == PARTIAL:
            return f"bytes {self.start}-{self.start + self.count - 1}/{self.size}"
        return None


def requested_range(request: web.BaseRequest, size: int) -> ByteRange:
    """The range ``request`` asks for in a body of ``size`` bytes (its ``Range`` header parsed
    by aiohttp, as FileResponse parses it)."""
    try:
        wanted = request.http_range
    except ValueError:
        return ByteRange(NOT_SATISFIABLE, 0, 0, size)
    start, end = wanted.start, wanted.stop
    if start is None:
        return ByteRange(200, 0, size, size)
    if start < 0 and end is None:  # the last -start bytes
        start = max(size + start, 0)
        count = size - start
    else:
        count = min(end if end is not None else size, size) - start
    if start >= size:
        return ByteRange(NOT_SATISFIABLE, 0, 0, size)
    return ByteRange(PARTIAL, start, count, size)


def ranged(request: web.BaseRequest, body: bytes, content_type: str) -> web.Response:
    """``body`` (or the part of it the request's ``Range`` names) as aiohttp's FileResponse
    would send it: Content-Type, Content-Length, Accept-Ranges and, for 206/416,
    Content-Range."""
    part = requested_range(request, len(body))
    headers = {"Content-Type": content_type}
    if part.content_range is not None:
        headers["Content-Range"] = part.content_range
    if part.status == NOT_SATISFIABLE:
        return web.Response(status=NOT_SATISFIABLE, headers=headers)
    headers["Accept-Ranges"] = "bytes"
    return web.Response(status=part.status, headers=headers,
                        body=body[part.start:part.start + part.count])
