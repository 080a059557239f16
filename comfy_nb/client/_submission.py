"""Submitting a prompt so that it never runs twice: the ``POST /api/prompt`` body, and what is done
when that request fails.

A prompt is sent again only when the first one is known to have failed:

* no connection could be made (refused, DNS, TLS, connect timeout): nothing was sent, so the
  transport retries at once, as for any request;
* 429 (rate limited, subscription) and 503 (unavailable): the server refused the request without
  handling it; it is sent again after a backoff (the transport retries 429 itself);
* 4xx other than 429: refused for good; raised as it is.

Every other failure may have queued the job: the connection broke after the request was sent
(the answer was lost, or never came in time), or a 5xx other than 503 (a gateway's 502 or 504
may come after the server behind it took the prompt; a 500 may come after queueing). Then the
job is looked for, with backoff, never sent again blind:

* a local ComfyUI uses the ``prompt_id`` the client sends (it does not refuse one sent twice: it
  runs it twice), so the client sends a fresh one and looks it up in queue and history. Found: the
  job is followed. Not there: the first request failed; after a 502/504 or a broken connection it
  is sent again, after a 500 (which ComfyUI answers only for bodies it cannot read) it is raised;
* Comfy Cloud's ``PromptRequest`` has no ``prompt_id`` and its handling of one is unknown, so
  none is sent (unless the caller asks for one) and the client always follows the id the server
  answers. The request carries a marker in ``extra_data`` instead, and the job is looked for
  among the account's newest jobs by that marker. As the Cloud spec promises no ``extra_data`` in
  job listings, not finding it proves nothing: the submission is never sent again then.

When the job can be neither found nor shown absent, :class:`SubmissionUncertain` is raised: the
job may or may not be queued (the message says how to check), and it cannot run twice. The one
risk left is the job that may then run unobserved; a lookup that runs before a slow server has
finished queueing would miss it too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ComfyError, RequestError, ServerError, SubmissionUncertain, TransportError
from ._backoff import RetryPolicy
from ._dialects import SUBMISSION_MARK, Dialect, Requester, job_path

REFUSED = frozenset({503})  # 5xx answers that say the request was not handled
GATEWAY = frozenset({502, 504})  # the server behind may have taken it; a repeat may succeed


@dataclass(frozen=True)
class Submission:
    """One prompt to post: its body, and what identifies its job if the answer is lost."""

    body: dict[str, Any]
    prompt_id: str | None  # sent, where the server uses it as the job's id
    marker: str | None  # in extra_data, where it may not
    created: float = field(default_factory=time.time)  # when it was prepared (Unix seconds)

    @classmethod
    def prepare(cls, dialect: Dialect, workflow: dict[str, Any], client_id: str,
                extra_data: dict[str, Any], front: bool,
                prompt_id: str | None = None) -> Submission:
        """The submission of ``workflow``. ``prompt_id``: the id asked for (a fresh one where
        the server honours client ids)."""
        if prompt_id is not None:
            job_path(prompt_id)  # refuses an id that could never be followed
        marker = None
        extra = dict(extra_data)
        if dialect.honours_prompt_id:
            prompt_id = prompt_id or str(uuid.uuid4())
        else:
            marker = str(uuid.uuid4())
            extra[SUBMISSION_MARK] = marker
        body = dialect.submit_body(workflow, prompt_id, client_id, extra, front)
        return cls(body, prompt_id if dialect.honours_prompt_id else None, marker)


async def post_prompt(http: Requester, dialect: Dialect, submission: Submission,
                      retry: RetryPolicy, known_jobs: Callable[[], set[str]],
                      sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
                      ) -> dict[str, Any]:
    """POST the submission; the server's answer, with the job's ``prompt_id`` (found again
    when the answer was lost). ``known_jobs()``: ids of jobs that are not this one."""
    attempts = max(1, retry.attempts)
    for attempt in range(attempts):
        try:
            response = await http.request("POST", "/api/prompt", json=submission.body,
                                          what="submitting the workflow")
        except TransportError as exc:
            if exc.never_sent:  # the transport has retried it already
                raise
            failure: ComfyError = exc
        except ServerError as exc:
            failure = exc
        else:
            return _answer(response, submission)
        if not (isinstance(failure, ServerError) and failure.status in REFUSED):
            found = await _look_up(http, dialect, submission, retry, known_jobs, sleep,
                                   failure)
            if found is not None:
                return {"prompt_id": found, "number": None, "node_errors": {}}
            if isinstance(failure, ServerError) and failure.status not in GATEWAY:
                raise failure  # the server failed on it, and did not queue it
        if attempt == attempts - 1:
            raise failure
        await sleep(retry.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _answer(response: Any, submission: Submission) -> dict[str, Any]:
    """The answer of an accepted prompt, with a usable ``prompt_id``."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise RequestError("the server accepted the workflow but its answer is not a JSON "
                           "object: is this a ComfyUI server?", status=response.status)
    job_id = answer.get("prompt_id")
    if not isinstance(job_id, str) or not job_id:
        if submission.prompt_id is None:
            raise RequestError("the server accepted the workflow but did not say its job id "
                               "(prompt_id): see client.jobs()", status=response.status)
        job_id = submission.prompt_id  # honoured as sent
    job_path(job_id)  # an id that could address another endpoint is refused
    return {**answer, "prompt_id": job_id}


async def _look_up(http: Requester, dialect: Dialect, submission: Submission,
                   retry: RetryPolicy, known_jobs: Callable[[], set[str]],
                   sleep: Callable[[float], Awaitable[None]], failure: ComfyError) -> str | None:
    """The id of the job of a submission that may have been queued; None when the server
    shows it was not. Raises :class:`SubmissionUncertain` when it cannot tell."""
    problem: ComfyError | None = None
    for attempt in range(max(1, retry.attempts)):
        await sleep(retry.delay(attempt))  # time for the server to finish queueing it
        try:
            found = await dialect.find_submission(http, submission.prompt_id, submission.marker,
                                                  known_jobs(), submission.created)
        except ComfyError as exc:
            problem = exc
            continue
        if found is not None:
            return found
        if dialect.honours_prompt_id and submission.prompt_id is not None:
            return None  # its id is neither queued nor in history: the request failed
        problem = None  # not among the newest jobs: maybe not listed yet
    raise SubmissionUncertain(_uncertain(failure, problem, submission),
                              prompt_id=submission.prompt_id) from failure


def _uncertain(failure: ComfyError, problem: ComfyError | None,
               submission: Submission) -> str:
    how = (f"the server could not be asked whether it queued it ({problem})"
           if problem is not None else
           "the job is not among the account's newest jobs, which may not show it")
    if submission.prompt_id is not None:
        check = (f"If it was queued it is job {submission.prompt_id}: "
                 f"client.job({submission.prompt_id!r}) follows it.")
    else:
        check = "Check client.jobs() before submitting it again."
    return (f"{failure}; {how}. The workflow may or may not be queued; it was not sent again, "
            f"so that it cannot run twice. {check}")
