"""How the emulator refuses malformed requests: the checks of JSON bodies, forms, queries and
file names that turn a client's mistake into a 400 instead of a crash.

ComfyUI 0.3.64 checks little and answers many malformed requests with its 500. The emulator
reproduces that only where the recordings show it (``POST /prompt`` with a body that is not JSON,
an empty body, a ``prompt`` that is a list or an editor workflow); anything else a client gets
wrong is answered with a 400 shaped like ComfyUI's own: ``{"error", "node_errors"}`` for
``/prompt``, an ``{"error"}`` object for the other JSON routes, an empty body where ComfyUI's
file routes answer 400 with an empty body.
"""

from __future__ import annotations

import errno
import math
import typing
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError


def prompt_error(kind: str, message: str, details: str) -> web.Response:
    """A refused ``POST /prompt``, in ComfyUI's ``{"error", "node_errors"}`` shape."""
    return web.json_response({"error": {"type": kind, "message": message, "details": details,
                                        "extra_info": {}}, "node_errors": {}}, status=400)


# the optional fields of a POST /prompt body, when given: (name, type, in words)
_FIELD_KINDS: tuple[tuple[str, type, str], ...] = (
    ("extra_data", dict, "an object"), ("client_id", str, "a string"),
    ("partial_execution_targets", list, "a list of node ids"))


def prompt_body_problem(body: dict[str, Any]) -> web.Response | None:
    """The 400 for a ``POST /prompt`` body whose fields have the wrong JSON types, or None.

    ComfyUI 0.3.64 checks none of this and crashes (500) on most of it; the recordings show
    that only for a ``prompt`` that is a list or an editor workflow, which are left to the
    validator to crash on as ComfyUI does. The rest is a client error, answered as one."""
    def invalid(message: str, details: str) -> web.Response:
        return prompt_error("invalid_prompt", f"Invalid prompt: {message}", details)

    if "number" in body:
        try:
            float(body["number"])
        except (TypeError, ValueError, OverflowError):
            return invalid("number must be a number", f"number is {json_kind(body['number'])}")
    for name, kind, words in _FIELD_KINDS:
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            return invalid(f"{name} must be {words}", f"{name} is {json_kind(value)}")
    targets = body.get("partial_execution_targets")
    if targets is not None and not all(isinstance(target, str) for target in targets):
        return invalid("partial_execution_targets must be a list of node ids",
                       "partial_execution_targets holds something that is not a string")
    prompt = body["prompt"]
    if isinstance(prompt, list) or (isinstance(prompt, dict) and looks_like_ui(prompt)):
        return None  # ComfyUI crashes on these (recorded): the validator does too
    if not isinstance(prompt, dict):
        return invalid("prompt must be an object in API format ({node id: {class_type, "
                       "inputs}})", f"prompt is {json_kind(prompt)}")
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return prompt_error("invalid_prompt", "Cannot execute because a node is missing "
                                "the class_type property.", f"Node ID '#{node_id}'")
        if not isinstance(node["class_type"], str):
            return prompt_error("invalid_prompt", "Cannot execute because node "
                                f"{node['class_type']} does not exist.", f"Node ID '#{node_id}'")
    return None


def looks_like_ui(prompt: dict[str, Any]) -> bool:
    """An editor workflow (``nodes`` and ``links``) where an API-format prompt belongs."""
    return "nodes" in prompt and "links" in prompt


def json_kind(value: Any) -> str:
    """What JSON calls the kind of ``value``: ``null``, ``a string``, ``a list``, ..."""
    if value is None:
        return "null"
    for kinds, name in ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"),
                        (list, "a list"), (dict, "an object")):
        if isinstance(value, kinds):
            return name
    return f"a {type(value).__name__}"


def request_error(message: str, details: str = "") -> web.Response:
    """A refused request to a JSON route other than ``/prompt``, shaped like ComfyUI's errors."""
    return web.json_response({"error": {"type": "invalid_request", "message": message,
                                        "details": details, "extra_info": {}}}, status=400)


async def json_body(request: web.Request) -> Any:
    """The request's JSON; :class:`web.HTTPBadRequest` when it is not JSON (or empty)."""
    try:
        return await request.json()
    except ValueError:  # UnicodeDecodeError included
        raise web.HTTPBadRequest(text="The request body is not valid JSON.") from None


def id_list_problem(body: Any) -> str | None:
    """Why a ``{"delete": [ids], "clear": bool}`` body (``POST /queue``, ``/history``) cannot be
    used, or None. Ids that are not strings are allowed: they match nothing, as in ComfyUI."""
    if not isinstance(body, dict):
        return ('the body must be an object like {"delete": [ids]} or {"clear": true}, '
                f"not {json_kind(body)}")
    if "delete" in body and not isinstance(body["delete"], list):
        return f"delete must be a list of ids, not {json_kind(body['delete'])}"
    return None


def int_query(query: Any, name: str) -> int | None:
    """An integer query parameter (None when absent); :class:`web.HTTPBadRequest` when it is
    not an integer."""
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None


async def read_form(request: web.Request) -> Any:
    """The request's form (multipart or url-encoded); :class:`web.HTTPBadRequest` for a body
    that cannot be read as one (no or a wrong boundary, a cut-off part, a header line too long,
    bad encoding).
    :class:`web.HTTPRequestEntityTooLarge` passes through."""
    try:
        return await request.post()
    except web.HTTPException:
        raise
    except (ValueError, AssertionError, LookupError, HttpProcessingError) as exc:
        raise web.HTTPBadRequest(text=f"The request body is not a readable form: {exc}"
                                 ) from None


# What a name the client chose can make the file system refuse (too long, a file where a folder
# should be, a folder where a file should be, a folder in it that does not exist): the client's
# mistake, not the server's.
_NAME_ERRORS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EINVAL,
                errno.EILSEQ, errno.ENOENT}


def refused_name(exc: BaseException) -> bool:
    """Whether ``exc`` (from a file operation on names a client chose) is the client's
    mistake: a NUL in a name, a name too long, a file where a folder is needed, ..."""
    if isinstance(exc, ValueError):  # "embedded null byte", a surrogate that cannot be encoded
        return True
    return isinstance(exc, OSError) and exc.errno in _NAME_ERRORS


@web.middleware
async def bad_requests_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """The local dialect's answer to a :class:`web.HTTPBadRequest` a handler raised: the
    :func:`request_error` object rather than aiohttp's plain-text page."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPBadRequest as exc:
        return request_error(exc.text or "Bad request")
    return response


def fault_problem(body: Any) -> str | None:
    """Why a ``POST /_emulator/faults`` body cannot be applied, or None: each known fault must
    have its type (a count an integer, a switch a boolean, seconds a finite number >= 0, an
    injected status 400..599), so that no setting breaks every later request. Unknown names are
    left to :meth:`Faults.update`, which lists the known ones."""
    from ._faults import Faults

    if not isinstance(body, dict):
        return f"send an object of faults, e.g. {{\"latency\": 0.2}}, not {json_kind(body)}"
    hints = typing.get_type_hints(Faults)
    hints["restart"] = bool
    for name, value in body.items():
        if name not in hints:
            continue
        allowed = typing.get_args(hints[name]) or (hints[name],)
        if not _fits(value, allowed):
            return f"{name} must be {_hint_words(allowed)}, not {json_kind(value)}"
        seconds = float in allowed and not isinstance(value, bool) and value is not None
        if seconds and not (math.isfinite(value) and value >= 0):
            return f"{name} must be a finite number of seconds >= 0, not {value!r}"
        if name == "http_error_status" and not 400 <= value <= 599:
            return f"http_error_status must be an error status (400..599), not {value}"
    return None


def _fits(value: Any, allowed: tuple[Any, ...]) -> bool:
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    return isinstance(value, float) and float in allowed


def _hint_words(allowed: tuple[Any, ...]) -> str:
    words = {bool: "true or false", int: "an integer", float: "a number"}
    named = [words[kind] for kind in allowed if kind in words]
    return " or ".join(named) + (" or null" if type(None) in allowed else "")
