"""Every error comfy_nb raises, in one tree rooted at :class:`ComfyError`::

    ComfyError                    (short in notebooks: a few lines instead of a traceback)
    ├── InvalidURL                the server URL is malformed (also a ValueError)
    ├── InvalidJobId              a job id that cannot go into a URL path (also a ValueError)
    ├── TransportError            the server could not be reached / the connection broke
    │   └── DownloadTimeout       a download took longer than allowed (also a TimeoutError)
    ├── RequestError              the server answered with an HTTP error
    │   ├── AuthenticationError   401: missing or wrong API key
    │   ├── PaymentRequiredError  402: not enough credits
    │   ├── RateLimitError        429: slow down (``retry_after`` seconds, if the server said)
    │   ├── NotFoundError         404
    │   ├── ValidationError       400 on submit: the server refused the workflow
    │   │                         (``node_errors``: :class:`NodeError` records)
    │   └── ServerError           5xx
    ├── UnexpectedContent         a downloaded output is not what its name says (an HTML page
    │                             sent for ``a.png``); it is not saved
    ├── FeatureUnavailable        the server does not offer it (a Comfy API v2 server without
    │                             node definitions: ``interact``, ``%comfy nodes``...)
    ├── NoMemberCanRun            no server of a pool has every node class and model file a
    │                             workflow needs (``lacks``: what each server lacks)
    ├── ExecutionFailed           the job ran and a node raised (node, exception, traceback)
    ├── SubmissionUncertain       a submission's answer was lost and the job was not found
    ├── JobCancelled              the job was interrupted or cancelled
    ├── JobLost                   the server no longer knows the job (it restarted?)
    ├── JobTimeout                waiting for the job took longer than allowed (a TimeoutError)
    ├── WorkflowError             a workflow cannot be read, converted or changed as asked
    │   ├── ParameterError        a parameter name is unknown or ambiguous, or its value wrong
    │   ├── WorkflowInvalid       the server would refuse it: every problem found before
    │   │                         submitting (``problems``: :class:`Problem` records)
    │   ├── UnknownNodeTypes      an editor workflow names node types the server lacks
    │   └── BrokenLinkError       an editor workflow links to a row or node that is not there
    ├── ReplayError               a replay cannot do this (no recording, or it needs a server)
    │   └── ReplayMismatch        this run was not recorded (``closest``, ``differences``)
    └── SweepTimeout              a sweep did not finish in time (a TimeoutError)

Messages are short and say what to do next. They never contain an API key, a signed URL or
``extra_data``: build them only from the fields below, never from request objects. How an HTTP
answer becomes one of these is the transport's business (:mod:`comfy_nb.client._http_errors`).

Must not: import anything of comfy_nb but the table layout (every layer imports this module).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._problem_table import or_dash, table

__all__ = [
    "AuthenticationError",
    "BrokenLinkError",
    "ComfyError",
    "DownloadTimeout",
    "ExecutionFailed",
    "FeatureUnavailable",
    "InvalidJobId",
    "InvalidURL",
    "JobCancelled",
    "JobLost",
    "JobTimeout",
    "NoMemberCanRun",
    "NodeError",
    "NotFoundError",
    "ParameterError",
    "PaymentRequiredError",
    "Problem",
    "RateLimitError",
    "ReplayError",
    "ReplayMismatch",
    "RequestError",
    "ServerError",
    "SubmissionUncertain",
    "SweepTimeout",
    "TransportError",
    "UnexpectedContent",
    "UnknownNodeTypes",
    "ValidationError",
    "WorkflowError",
    "WorkflowInvalid",
]

FULL_TRACEBACK_HINT = "(full traceback: %config ComfyMagics.short_errors = False)"
TRACEBACK_TAIL = 6  # lines of a server-side traceback shown in the short form


class ComfyError(Exception):
    """Base class of every comfy_nb client error.

    In IPython and Jupyter these errors print as a few readable lines instead of a Python
    traceback (the cell still fails); ``ComfyError.short_tracebacks = False`` (or
    ``%config ComfyMagics.short_errors = False``) brings the full traceback back."""

    short_tracebacks: ClassVar[bool] = True

    def notebook_lines(self) -> list[str]:
        """The short form shown in notebooks."""
        return [f"{type(self).__name__}: {self}"]

    @property
    def _render_traceback_(self) -> Callable[[], list[str]]:
        # IPython calls this when it exists; absent, IPython prints the usual traceback
        if not ComfyError.short_tracebacks:
            raise AttributeError("_render_traceback_")
        return lambda: [*self.notebook_lines(), FULL_TRACEBACK_HINT]


class InvalidURL(ComfyError, ValueError):
    """The server URL cannot be used: not http(s), credentials in it, a bad host or port."""


class InvalidJobId(ComfyError, ValueError):
    """A job id that cannot be put into a URL path: empty, ``.`` or ``..``, or holding ``/``,
    ``\\``, ``%`` or control characters (it could address another endpoint)."""


class TransportError(ComfyError):
    """The server could not be reached, or the connection broke mid-request. ``never_sent`` is
    True when the request certainly did not reach the server (no connection could be made), so
    sending it again cannot do anything twice."""

    def __init__(self, message: str, *, never_sent: bool = False) -> None:
        super().__init__(message)
        self.never_sent = never_sent


class DownloadTimeout(TransportError, TimeoutError):
    """A download did not finish within the client's ``download_timeout`` (retries included);
    nothing of it was kept."""


class RequestError(ComfyError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, status: int, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class AuthenticationError(RequestError):
    """401: the API key is missing or wrong."""


class PaymentRequiredError(RequestError):
    """402: the account has no credits left."""


class RateLimitError(RequestError):
    """429: too many requests or an inactive subscription; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, status: int = 429, body: Any = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class NotFoundError(RequestError):
    """404: no such job, file or route."""


class ServerError(RequestError):
    """5xx: the server failed."""


class FeatureUnavailable(ComfyError):
    """The server does not offer what was asked: a Comfy API v2 server without the v1 routes
    has no node definitions (so no ``interact``, no pre-submit checks, no ``%comfy nodes``),
    no model lists and no queue-wide interrupt."""


class NoMemberCanRun(ComfyError):
    """No member of a pool has every node class and model file a workflow needs; ``lacks``
    maps each member's URL to what it lacks, ``silent`` lists the members that did not answer."""

    def __init__(self, lacks: dict[str, list[str]], silent: list[str] | None = None) -> None:
        self.lacks = lacks
        self.silent = list(silent or [])  # the members that did not answer, so were not asked
        lines = [f"  {url}: lacks {', '.join(missing)}" for url, missing in lacks.items()]
        lines += [f"  {url}: does not answer" for url in self.silent]
        super().__init__("no server of the pool can run this workflow:\n" + "\n".join(lines)
                         + "\nInstall what is missing on one of them, or change the workflow.")


class UnexpectedContent(ComfyError):
    """An output file is not what its name says: a server (or a proxy in front of it) sent
    something else, such as an HTML login page, for ``a.png``. Nothing of it is saved."""

    def __init__(self, filename: str, expected: str, found: str) -> None:
        hint = " (the login or error page of a proxy?)" if found == "an HTML page" else ""
        super().__init__(
            f"{filename!r} should be {expected}, but the server sent {found}{hint}; it was not "
            "saved: check the server URL and any proxy in front of it, then try again")
        self.filename = filename
        self.expected = expected
        self.found = found


@dataclass(frozen=True)
class NodeError:
    """One problem the server found in one node of a submitted workflow."""

    node_id: str
    class_type: str
    type: str
    message: str
    details: str = ""
    input_name: str | None = None

    def __str__(self) -> str:
        where = f"node {self.node_id} ({self.class_type})"
        if self.input_name:
            where += f", input {self.input_name!r}"
        detail = f": {self.details}" if self.details and self.details != self.input_name else ""
        return f"{where}: {self.message}{detail}"


class ValidationError(RequestError):
    """400 on submit: the server refused the workflow. ``node_errors`` lists every problem."""

    def __init__(self, message: str, *, status: int = 400, body: Any = None,
                 error_type: str = "", node_errors: list[NodeError] | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.error_type = error_type
        self.node_errors = list(node_errors or [])


@dataclass
class ExecutionFailed(ComfyError):
    """The job ran and a node raised. Fields come from the server's ``execution_error``."""

    prompt_id: str
    node_id: str
    node_type: str
    exception_type: str
    exception_message: str
    traceback: list[str] = field(default_factory=list)
    node_title: str | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        message = self.exception_message.strip()
        title = f"{self.node_title!r} " if self.node_title and self.node_title != self.node_type \
            else ""
        return (f"node {self.node_id} {title}({self.node_type}) failed with "
                f"{self.exception_type}: {message}")

    def notebook_lines(self) -> list[str]:
        """The failing node and exception, then the last lines of the server's traceback."""
        lines = [f"{type(self).__name__}: {self}"]
        tail = "".join(self.traceback).rstrip().splitlines()[-TRACEBACK_TAIL:]
        if tail:
            lines.append("server traceback (last lines):")
            lines += [f"  {line}" for line in tail]
        return lines


class SubmissionUncertain(ComfyError):
    """Submitting a workflow failed in a way that leaves its fate unknown (the answer was lost,
    or a server error), and the server could not show whether it queued the job. It was not
    sent again, so it never runs twice; ``prompt_id`` is its id if it was queued, where the
    server is known to use the id the client chose (None otherwise). The cause is chained."""

    def __init__(self, message: str, *, prompt_id: str | None = None) -> None:
        super().__init__(message)
        self.prompt_id = prompt_id


class JobCancelled(ComfyError):
    """The job was interrupted or cancelled before it finished."""

    def __init__(self, prompt_id: str, node_id: str | None = None) -> None:
        where = f" at node {node_id}" if node_id else ""
        super().__init__(f"job {prompt_id} was cancelled{where}")
        self.prompt_id = prompt_id
        self.node_id = node_id


class JobLost(ComfyError):
    """The server no longer knows the job: it was restarted, or its history was cleared."""

    def __init__(self, prompt_id: str) -> None:
        super().__init__(f"the server no longer knows job {prompt_id}; it may have restarted. "
                         "Submit the workflow again.")
        self.prompt_id = prompt_id


class JobTimeout(ComfyError, TimeoutError):
    """Waiting for a job took longer than the timeout. ``cancelled``: True if the job was
    cancelled on the server because of it, False if cancelling it failed, None if it was left
    running (``job.wait(timeout)``)."""

    def __init__(self, prompt_id: str, timeout: float, cancelled: bool | None = None) -> None:
        if cancelled is None:
            ending = "; it may still be running (cancel it with job.cancel())"
        elif cancelled:
            ending = " and was cancelled on the server"
        else:
            ending = (" and could not be cancelled; it may still be running "
                      f"(client.cancel({prompt_id!r}))")
        super().__init__(f"job {prompt_id} did not finish within {timeout:g} s{ending}")
        self.prompt_id = prompt_id
        self.timeout = timeout
        self.cancelled = cancelled


# -- workflows ----------------------------------------------------------------------------------


class WorkflowError(ComfyError):
    """The workflow cannot be read, converted or changed as asked."""


class ParameterError(WorkflowError):
    """A parameter name is unknown or ambiguous, or the value cannot be set."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a workflow before it is sent: one row of the table the notebook shows.

    ``type``, ``message`` and ``details`` are what the server itself would answer
    (``value_not_in_list``, ``required_input_missing``, ``invalid_prompt``, ...), plus
    ``dependency_cycle``, which the server only reports when the workflow runs.
    ``explanation`` says in plain words what a terse server answer means (shown instead of
    ``details``); ``suggestions`` are close names for a value that is not in the list."""

    node_id: str | None
    class_type: str | None
    input_name: str | None
    type: str
    message: str
    details: str = ""
    suggestions: tuple[str, ...] = ()
    title: str | None = None  # the node's title in the editor (``_meta.title``)
    allowed: str = ""  # what the input accepts: a range or the first choices of a list
    explanation: str = ""

    def __str__(self) -> str:
        where = "workflow"
        if self.node_id is not None:
            where = f"node {self.node_id}"
            if self.class_type:
                where += f" ({self.class_type})"
        if self.input_name:
            where += f", input {self.input_name!r}"
        return f"{where}: {self.full_message()}"

    def full_message(self) -> str:
        """The message with its explanation (or the server's details) and close names."""
        text = self.message
        detail = self.explanation or self.details
        # details that only repeat the input or node shown next to it add nothing
        if detail and detail not in (self.input_name, f"Node ID '#{self.node_id}'"):
            text = f"{text.rstrip('.')}: {detail}"
        if self.suggestions:
            names = [repr(name) for name in self.suggestions]
            choices = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
            text += f" (did you mean {choices}?)"
        return text


class WorkflowInvalid(WorkflowError):
    """The workflow would be refused by the server; ``problems`` lists every problem at once.

    ``str(error)`` names each problem on one line; :meth:`table` lays them out as a table."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"the workflow has {count} problem{'s' if count != 1 else ''}"
        lines = [head + ":"] + [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))

    def rows(self) -> list[tuple[str, str, str, str, str, str, str]]:
        """One (node, title, class, input, error type, message, allowed) row per problem."""
        return [
            (
                or_dash(problem.node_id),
                or_dash(problem.title),
                or_dash(problem.class_type),
                or_dash(problem.input_name),
                or_dash(problem.type),
                or_dash(problem.full_message()),
                or_dash(problem.allowed),
            )
            for problem in self.problems
        ]

    def notebook_lines(self) -> list[str]:
        """The problems as a table under a one-line summary (what notebooks show)."""
        count = len(self.problems)
        head = (f"{type(self).__name__}: the workflow has {count} "
                f"problem{'s' if count != 1 else ''}; nothing was submitted")
        return [head, "", *self.table().splitlines()]

    def table(self) -> str:
        """The problems as a plain-text table about 100 characters wide: long cells wrap onto
        more lines, nothing is cut (see :mod:`comfy_nb._problem_table`)."""
        return table(list(self.rows()))


class UnknownNodeTypes(WorkflowError):
    """The editor workflow uses node types the server does not know; ``missing`` maps each
    type to the ids of the nodes that use it. Install the custom nodes, or remove those nodes."""

    def __init__(self, missing: dict[str, list[str]]) -> None:
        self.missing = {kind: list(ids) for kind, ids in missing.items()}
        parts = [f"{kind} (node{'s' if len(ids) > 1 else ''} {', '.join(ids)})"
                 for kind, ids in self.missing.items()]
        count = len(self.missing)
        super().__init__(
            f"the server does not know {count} node type{'s' if count != 1 else ''}: "
            + "; ".join(parts)
            + ". Install the custom nodes that provide them, or remove those nodes."
        )


class BrokenLinkError(WorkflowError):
    """A link in the editor workflow points to a link row or node that does not exist (the
    editor refuses such a file too). Reconnect the input in the editor and save again."""


# -- replays ------------------------------------------------------------------------------------


class ReplayError(ComfyError):
    """A replay cannot do this: the recording is missing or damaged, or the call needs a
    server (a replay makes no network request)."""


class ReplayMismatch(ReplayError):
    """This run was not recorded: its workflow or parameters differ from every recorded run.

    ``closest`` names the recorded run most like it (its folder), ``differences`` lists what
    differs from that one (``"KSampler.seed: recorded 42, now 7"``)."""

    def __init__(self, path: str, closest: str | None, differences: list[str],
                 recorded: int) -> None:
        self.path = path
        self.closest = closest
        self.differences = differences
        self.recorded = recorded
        if closest is None:
            message = f"this run is not in the recording {path!r}, which holds no runs"
        else:
            message = (f"this run is not in the recording {path!r}; the closest of its "
                       f"{recorded} recorded run{'s' if recorded != 1 else ''} is {closest}: "
                       + "; ".join(differences))
        super().__init__(message)

    def notebook_lines(self) -> list[str]:
        if self.closest is None:
            lines = [f"ReplayMismatch: the recording {self.path!r} holds no runs"]
        else:
            lines = [f"ReplayMismatch: this run is not in the recording {self.path!r} (a replay "
                     "serves exact matches only)",
                     f"  closest recorded run: {self.closest}, which differs in"]
            lines += [f"    {difference}" for difference in self.differences]
        lines.append(f"  To serve it, record it with a server: comfy_nb.record({self.path!r}) "
                     f"(or %comfy record {self.path}), then run the notebook again.")
        return lines


# -- sweeps -------------------------------------------------------------------------------------


class SweepTimeout(ComfyError, TimeoutError):
    """The sweep did not finish in time; its unfinished jobs were cancelled."""

    def __init__(self, timeout: float, unfinished: int) -> None:
        super().__init__(f"the sweep did not finish within {timeout:g} s; its {unfinished} "
                         "unfinished jobs were cancelled")
        self.timeout = timeout
