"""The Lambda entry point: ``mailspool.aws.handler(event, context)`` (**contract**).

SES events (bounces, complaints, deliveries...) arriving on the same routes are recorded
first (``mailspool.feedback.route``). Every object an event announces (see ``events``)
that is a batch of this store (``MAILSPOOL_STORE``: same bucket, under ``PREFIX/queue/``,
ending ``.json``) goes through ``Worker.deliver``, the one code path every trigger uses; anything else is
logged and skipped. Near the end of the invocation the worker writes what is left as a
continuation batch: a new ``queue/`` object, so a new event, so a new invocation.

What the caller learns:

- from SQS, a partial batch response: the messages whose batch could not be delivered
  now (store error, sending paused, claim lost, not started before the deadline) are
  reported as failures and come back after the visibility timeout. A batch ``held`` by
  another invocation is not a failure: that invocation is delivering it;
- invoked directly (S3, SNS, EventBridge: asynchronous), the handler raises when a
  batch could not be delivered, so Lambda retries and, when retries run out, the
  on-failure destination receives the event; the sweeper re-drives the batch anyway.

Each record is read alone: one that cannot be read (not JSON, JSON nested deeper than
1024, wrappers nested more than ``events.MAX_NESTING`` deep, a field of the wrong type, an
SES event dated outside what UTC holds) is logged with its reason and dropped, never
retried (the same bytes would be read the same way; a batch whose notification is lost
is re-driven by the sweeper), and the records around it are delivered and recorded as
usual. ``docs/aws.md`` lists what is retried and what is dropped.

``context`` may be None (a local call, a test): there is then no deadline.

A repeated event, or a retry after a crash, sends nothing already recorded in the
batch's ledger. Logs are JSON lines without bodies or addresses; each batch run also
prints one CloudWatch Embedded Metric Format line (``mailspool.aws.metrics``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from mailspool.aws.events import ObjectEvent, parse_event
from mailspool.aws.metrics import DEFAULT_NAMESPACE, batch_metrics, write_batch_metrics
from mailspool.aws.returned_mail import read_returned_mail, returned_key
from mailspool.aws.runtime import deadline_margin, open_runtime
from mailspool.delivery.steps import ThrottleCount
from mailspool.delivery.worker import BatchReport, BatchStatus, Worker
from mailspool.errors import MailspoolError
from mailspool.feedback.route import FeedbackResult, ingest_invocation
from mailspool.feedback.settings import feedback_options
from mailspool.spool import layout
from mailspool.stores.base import Store
from mailspool.transports.base import Transport
from mailspool.triggers.local import drain_webhooks

__all__ = [
    "BatchNotDelivered",
    "LambdaContext",
    "deliver_event",
    "handle",
    "handler",
    "remaining_time",
]

log = logging.getLogger("mailspool.aws")


class EventOutcome(StrEnum):
    """What became of an announced object that was not delivered (else: its BatchStatus)."""

    #: not a queued batch of this store
    SKIPPED = "skipped"
    #: not started: too close to the end of the invocation (SQS brings it back)
    DEADLINE = "deadline"
    #: the delivery raised (a store error): to be tried again
    ERROR = "error"


#: Outcomes after which the batch must be tried again (the others are settled).
RETRY_STATUSES: frozenset[BatchStatus | EventOutcome] = frozenset(
    {
        BatchStatus.PAUSED,
        BatchStatus.LOST,
        BatchStatus.STOPPED,
        EventOutcome.ERROR,
        EventOutcome.DEADLINE,
    }
)


class LambdaContext(Protocol):
    """The part of Lambda's context object the handler uses."""

    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int: ...


class BatchNotDelivered(MailspoolError):
    """Raised to Lambda for a direct invocation whose batches could not all be delivered."""


@dataclass(slots=True)
class _Result:
    event: ObjectEvent
    status: BatchStatus | EventOutcome
    report: BatchReport | None = None


def handler(event: Mapping[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Lambda's entry point; see the module docstring for what it returns or raises."""
    return handle(event, context)


def handle(
    event: Mapping[str, Any],
    context: LambdaContext | None,
    *,
    store: Store | None = None,
    transport: Transport | None = None,
) -> dict[str, Any]:
    """``handler`` with an optional store or transport in place of the configured ones."""
    _configure_logging()
    if not isinstance(event, Mapping):
        _log({"event": "ignored", "reason": f"the event is a {type(event).__name__}"})
        return {"batches": 0, "sent": 0, "retry": 0}
    runtime = open_runtime(store=store, transport=transport)
    request_id = str(getattr(context, "aws_request_id", "") or "local")
    remaining = remaining_time(context)
    options = feedback_options(runtime.settings)
    topics = runtime.settings.sns_topics  # when set, SES events of other topics are refused
    feedback = ingest_invocation(event, runtime.store, options=options, topics=topics)
    _, returned_retry = read_returned_mail(parse_event(event), runtime.store, runtime.settings)
    feedback.retry.extend(returned_retry)
    margin = deadline_margin(runtime.settings, float("inf") if remaining is None else remaining())
    worker = runtime.worker(margin=margin, owner=f"lambda:{request_id}")
    worker.steps.append(ThrottleCount())  # for the EMF metrics
    try:
        answer = deliver_event(
            event,
            worker,
            remaining=remaining,
            request_id=request_id,
            namespace=runtime.settings.metrics_namespace,
        )
        spare = margin + runtime.settings.webhook_timeout  # the outbox, while a POST fits
        drain_webhooks(worker, stop=lambda: remaining is not None and remaining() < spare)
    finally:
        worker.close()
    return _with_feedback(event, answer, feedback)


def remaining_time(context: LambdaContext | None) -> Callable[[], float] | None:
    """Seconds left in the invocation, or None (no deadline) without a Lambda context."""
    millis = getattr(context, "get_remaining_time_in_millis", None)
    if millis is None:
        return None
    return lambda: float(millis()) / 1000


def deliver_event(
    event: Mapping[str, Any],
    worker: Worker,
    *,
    remaining: Callable[[], float] | None = None,
    request_id: str = "local",
    on_batch: Callable[[BatchReport], None] | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> dict[str, Any]:
    """Deliver every batch an event announces with ``worker``; answer as ``handler`` does.
    ``on_batch`` sees each batch's report (the SQS worker prints its line); each batch's
    metrics go to ``namespace`` (the ``metrics_namespace`` setting)."""
    margin = worker.options.deadline_margin
    unreadable: list[str] = []
    items = parse_event(event, unreadable)
    results = [_one(worker, item, remaining, margin, request_id, namespace) for item in items]
    if on_batch is not None:
        for result in results:
            if result.report is not None:
                on_batch(result.report)
    return _answer(event, results, unreadable)


def _one(
    worker: Worker,
    item: ObjectEvent,
    remaining: Callable[[], float] | None,
    margin: float,
    request_id: str,
    namespace: str,
) -> _Result:
    key = _store_key(worker.store, item)
    if key is None:
        return _Result(item, EventOutcome.SKIPPED)
    if item.message_id is not None and remaining is not None and remaining() < margin:
        outcome = EventOutcome.DEADLINE  # not started: SQS brings it back
        _log({"event": "batch", "batch": key, "status": outcome, "request_id": request_id})
        return _Result(item, outcome)
    throttled = _throttled(worker)
    try:
        report = worker.deliver(key, deadline=remaining)
    except Exception as err:  # a store error, or anything else: this batch is retried
        log.error(
            json.dumps(
                {
                    "event": "batch",
                    "batch": key,
                    "status": EventOutcome.ERROR,
                    "request_id": request_id,
                    "error": f"{type(err).__name__}: {err}",
                }
            )
        )
        return _Result(item, EventOutcome.ERROR)
    _log(
        {
            "event": "batch",
            "batch": report.batch_id,
            "status": report.status,
            "sent": report.sent,
            "failed": report.failed,
            "continued": report.continued,
            "pending": report.pending,
            "request_id": request_id,
            "source": item.source,
        }
    )
    document = batch_metrics(
        report,
        throttled=_throttled(worker) - throttled,
        function=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
        namespace=namespace,
        headroom=None if worker.quota is None else worker.quota.figures().headroom,
    )
    write_batch_metrics(document)
    return _Result(item, report.status, report)


def _throttled(worker: Worker) -> int:
    counts = [step.throttled for step in worker.steps if isinstance(step, ThrottleCount)]
    return sum(counts)


def _store_key(store: Store, item: ObjectEvent) -> str | None:
    """The store key of a queued batch, or None (logged) for any other object."""
    bucket = getattr(store, "bucket", None)
    root = f"{getattr(store, 'prefix', '')}/".lstrip("/")
    reason = None
    if bucket is None:
        reason = f"the store {store.url} is not an S3 store"
    elif item.bucket != bucket:
        reason = f"bucket {item.bucket!r} is not the store's ({bucket!r})"
    elif returned_key(store, item) is not None:
        return None  # returned mail (``returned_mail``), read before the batches
    elif not item.key.startswith(root + layout.QUEUE) or not item.key.endswith(".json"):
        reason = f"not a queued batch of {store.url}"
    if reason is not None:
        _log({"event": "ignored", "key": item.key, "reason": reason})
        return None
    return item.key[len(root) :]


def _answer(
    event: Mapping[str, Any], results: list[_Result], unreadable: list[str]
) -> dict[str, Any]:
    retry = [r for r in results if r.status in RETRY_STATUSES]
    summary: dict[str, Any] = {
        "batches": len([r for r in results if r.report is not None]),
        "sent": sum(r.report.sent for r in results if r.report is not None),
        "retry": len(retry),
    }
    if _from_sqs(event):
        failed = [*(r.event.message_id for r in retry if r.event.message_id), *unreadable]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in dict.fromkeys(failed)]}
    if retry:
        keys = ", ".join(f"{r.event.key} ({r.status})" for r in retry)
        raise BatchNotDelivered(f"not delivered, to be retried: {keys}")
    return summary


def _with_feedback(
    event: Mapping[str, Any], answer: dict[str, Any], feedback: FeedbackResult
) -> dict[str, Any]:
    """The answer with the SES events' outcome: SQS messages to retry, or an error."""
    if _from_sqs(event):
        failures = answer.setdefault("batchItemFailures", [])
        known = {failure["itemIdentifier"] for failure in failures}
        failures.extend(
            {"itemIdentifier": i} for i in dict.fromkeys(feedback.retry) if i not in known
        )
        return answer
    if feedback.errors:
        raise BatchNotDelivered(f"SES events not recorded, to be retried: {feedback.errors[0]}")
    if feedback.events:
        answer["events"] = feedback.events
    return answer


def _from_sqs(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and any(
        isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records
    )


def _log(fields: dict[str, Any]) -> None:
    log.info(json.dumps(fields))


def _configure_logging() -> None:
    """Make the handler's JSON lines visible: Lambda's root logger starts at WARNING."""
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
