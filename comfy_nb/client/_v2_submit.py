"""Submitting a workflow to a Comfy API v2 server so that it never runs twice and is never lost:
``POST /api/v2/jobs`` with an ``Idempotency-Key``, and what is done when that request fails.

The spec's key is single-use (reject-on-duplicate, no replay): the first request presenting it
is processed; any later one is refused ``422 idempotency_key_reuse`` and never executed. The
server releases the key when a submission definitely created no job (a validation error, a
refusal such as queue-full) and keeps it claimed when the outcome is unknown. So each submission
gets one fresh key (and a marker in ``metadata``), and:

* no connection could be made (nothing was sent): the transport sends it again at once;
* 429 (``queue_full``, ``rate_limited``, ``deployment_not_ready``): refused, the key released;
  sent again with the same key after ``Retry-After`` (the transport does this);
* any other 4xx: refused for good and raised (``invalid_workflow`` as
  :class:`~comfy_nb.errors.WorkflowInvalid`, see :func:`~comfy_nb.client._v2.submission_error`);
* the answer lost (the connection broke after sending, or no answer in time) or a 5xx
  (``upstream_unreachable``, ``upstream_error``): the job may exist. The same request is sent
  again with the **same key**, after a backoff. A ``201`` then means the first one created no
  job (its key was free): this one is the only job. ``422 idempotency_key_reuse`` means the
  first one holds the key and may have created the job: it is looked for among the newest jobs
  by its marker, and followed if found. Never is it sent with a new key.

When the job can be neither found nor shown absent, :class:`SubmissionUncertain` is raised: it
may or may not exist, and it cannot run twice.

Owns: the Idempotency-Key of a submission and the decision to send it again or look for it.
Must not: build the body (:meth:`~comfy_nb.client._v2.V2Dialect.submit_body` does), or follow
the job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import (
    ComfyError,
    FeatureUnavailable,
    RequestError,
    ServerError,
    SubmissionUncertain,
    TransportError,
)
from ._backoff import RetryPolicy
from ._dialects import SUBMISSION_MARK, Requester, job_path
from ._submission import Submission
from ._v2 import JOBS, V2Dialect, envelope, submission_error


async def post_job(http: Requester, dialect: V2Dialect, submission: Submission,
                   retry: RetryPolicy, known_jobs: Callable[[], set[str]],
                   sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
                   ) -> dict[str, Any]:
    """POST the submission; ``{"prompt_id", "number", "node_errors", "job"}`` of the job it
    made (found again when the answer was lost). ``known_jobs()``: ids that are not it."""
    key = submission.marker or str(submission.created)
    body = submission.body
    uncertain: ComfyError | None = None  # an attempt whose outcome is unknown
    attempts = max(1, retry.attempts)
    for attempt in range(attempts):
        try:
            response = await http.request("POST", JOBS, json=body,
                                          headers={"Idempotency-Key": key},
                                          what="submitting the workflow")
        except TransportError as exc:
            if exc.never_sent and uncertain is None:  # the transport has retried it already
                raise
            uncertain = uncertain or exc
        except ServerError as exc:
            uncertain = uncertain or exc
        except RequestError as exc:
            code = envelope(exc.body)[0]
            if code == "idempotency_key_reuse" and uncertain is not None:
                return await _recovered(http, dialect, submission, retry, known_jobs, sleep,
                                        uncertain)
            raise submission_error(exc) from None
        else:
            return answer_of(response)
        if attempt < attempts - 1:
            await sleep(retry.delay(attempt))
    assert uncertain is not None
    return await _recovered(http, dialect, submission, retry, known_jobs, sleep, uncertain)


def answer_of(response: Any) -> dict[str, Any]:
    """The answer of an accepted submission, with a usable job id."""
    try:
        job = response.json()
    except ValueError:
        job = None
    job_id = job.get("id") if isinstance(job, dict) else None
    if not isinstance(job_id, str) or not job_id:
        raise RequestError("the server accepted the workflow but did not say its job id: see "
                           "client.jobs()", status=response.status)
    job_path(job_id)  # an id that could address another endpoint is refused
    return {"prompt_id": job_id, "number": None, "node_errors": {}, "job": job}


async def _recovered(http: Requester, dialect: V2Dialect, submission: Submission,
                     retry: RetryPolicy, known_jobs: Callable[[], set[str]],
                     sleep: Callable[[float], Awaitable[None]],
                     failure: ComfyError) -> dict[str, Any]:
    """The job of a submission whose outcome was unknown, found by its marker; else
    :class:`SubmissionUncertain`."""
    problem: ComfyError | None = None
    marker = submission.marker or str(submission.body.get(SUBMISSION_MARK, ""))
    for attempt in range(max(1, retry.attempts)):
        try:
            found = await dialect.find_submission(http, None, marker, known_jobs(),
                                                  submission.created)
        except FeatureUnavailable as exc:
            problem = exc
            break
        except ComfyError as exc:
            problem = exc
        else:
            if found is not None:
                return {"prompt_id": found, "number": None, "node_errors": {}}
            problem = None
        await sleep(retry.delay(attempt))
    how = (f"the server could not be asked whether it made the job ({problem})"
           if problem is not None else "the job is not among the newest jobs")
    raise SubmissionUncertain(
        f"{failure}; {how}. The workflow may or may not be queued; it was not sent again under "
        "a new Idempotency-Key, so it cannot run twice. Check client.jobs() before submitting "
        "it again.") from failure
