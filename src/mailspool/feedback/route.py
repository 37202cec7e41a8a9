"""SES events in a Lambda invocation (``mailspool.aws.handler``) or in JSON lines.

The handler gets S3 notifications and SES events on the same queue or topic; this module
takes the SES ones (``events.unwrap``) and applies them (``ingest``). Per SQS message:
an event that cannot be recorded now (store error) makes its message a failure in the
partial batch response, so SQS delivers it again; an event that cannot be read at all
is logged and dropped (delivering it again would not make it readable). A topic not in
``topics`` (when given) is refused the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from mailspool.errors import StoreError
from mailspool.feedback.events import Wrapped, unwrap
from mailspool.feedback.ingest import FeedbackOptions, IngestReport, ingest
from mailspool.feedback.suppression import SuppressionList, shared_suppressions
from mailspool.stores.base import Store

__all__ = ["FeedbackResult", "ingest_invocation", "ingest_lines"]

log = logging.getLogger("mailspool.feedback")


@dataclass(slots=True)
class FeedbackResult:
    """What one invocation's SES events did; ``retry``: SQS message ids to fail."""

    events: int = 0
    new: int = 0
    suppressed: int = 0
    retry: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, report: IngestReport) -> None:
        self.events += report.events
        self.new += report.new
        self.suppressed += report.suppressed


def ingest_invocation(
    invocation: Mapping[str, Any],
    store: Store,
    *,
    topics: frozenset[str] = frozenset(),
    options: FeedbackOptions | None = None,
    suppressions: SuppressionList | None = None,
) -> FeedbackResult:
    """Apply every SES event of a Lambda invocation; see the module docstring."""
    result = FeedbackResult()
    for found in _per_message(invocation):
        allowed = [w for w in found if _topic_allowed(w, topics)]
        if not allowed:
            continue
        try:
            report = ingest(
                store, [w.event for w in allowed], options=options, suppressions=suppressions
            )
        except StoreError as err:
            message_id = allowed[0].sqs_message_id
            result.errors.append(f"{type(err).__name__}: {err}")
            if message_id:
                result.retry.append(message_id)
            continue
        result.add(report)
    if result.events:
        log.info(json.dumps({"event": "ses-events", "count": result.events, "new": result.new}))
    return result


def ingest_lines(
    lines: IO[str], store: Store, *, options: FeedbackOptions | None = None
) -> tuple[FeedbackResult, list[str]]:
    """JSON lines, each any shape ``unwrap`` reads; the result and one error per bad line."""
    result, problems = FeedbackResult(), []
    name = getattr(lines, "name", "-")
    suppressions = shared_suppressions(store)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            found = list(unwrap(json.loads(line)))
        except ValueError as err:
            problems.append(f"{name}, line {number}: {err}")
            continue
        if not found:
            problems.append(f"{name}, line {number}: no SES event in this line")
            continue
        result.add(
            ingest(store, [w.event for w in found], options=options, suppressions=suppressions)
        )
    return result, problems


def _per_message(invocation: Mapping[str, Any]) -> Iterator[list[Wrapped]]:
    """The SES events of each record apart, so one bad record spoils nothing else."""
    records = invocation.get("Records")
    parts: Iterable[Any] = (
        ({"Records": [r]} for r in records) if isinstance(records, list) else (invocation,)
    )
    for part in parts:
        try:
            yield list(unwrap(part))
        except ValueError as err:
            log.warning(json.dumps({"event": "ignored", "reason": f"unreadable SES event: {err}"}))


def _topic_allowed(wrapped: Wrapped, topics: frozenset[str]) -> bool:
    if not topics or not wrapped.topic_arn or wrapped.topic_arn in topics:
        return True
    log.warning(
        json.dumps({"event": "ignored", "reason": f"topic {wrapped.topic_arn} not allowed"})
    )
    return False
