"""SES events in a Lambda invocation (``mailspool.aws.handler``) or in JSON lines.

The handler gets S3 notifications and SES events on the same queue or topic; this module
takes the SES ones (``events.unwrap``) and applies them (``ingest``). Each SQS message
(each record) is read and recorded alone, so one bad message costs only itself:

- one that cannot be read at all (not an SES event, a field of the wrong type, a time
  that does not hold in UTC, wrappers nested too deep) is logged with its reason and
  dropped: delivering it again would not make it readable;
- one that cannot be recorded now (a store error, or any other error while recording)
  is a failure in the partial batch response, so SQS delivers it again (and, after the
  queue's ``maxReceiveCount``, moves it to its dead-letter queue).

A topic not in ``topics`` (when given) is refused like an unreadable message. Lines of
``mailspool events ingest`` are taken the same way, each alone (``ingest_lines``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from mailspool.errors import StoreError
from mailspool.feedback.events import Wrapped, unwrap
from mailspool.feedback.ingest import FeedbackOptions, IngestReport, ingest
from mailspool.feedback.lines import Line, read_lines
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
    for found in _per_message(invocation, result.retry):
        allowed = [w for w in found if _topic_allowed(w, topics)]
        if not allowed:
            continue
        try:
            report = ingest(
                store, [w.event for w in allowed], options=options, suppressions=suppressions
            )
        except Exception as err:  # StoreError, or a fault: recorded on a later delivery
            message_id = allowed[0].sqs_message_id
            error = f"{type(err).__name__}: {err}"
            result.errors.append(error)
            if not isinstance(err, StoreError):
                log.error(json.dumps({"event": "ses-event-error", "error": error[:500]}))
            if message_id:
                result.retry.append(message_id)
            continue
        result.add(report)
    if result.events:
        log.info(json.dumps({"event": "ses-events", "count": result.events, "new": result.new}))
    return result


def ingest_lines(
    lines: IO[bytes] | IO[str],
    store: Store,
    *,
    options: FeedbackOptions | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> tuple[FeedbackResult, int]:
    """JSON lines, each any shape ``unwrap`` reads, each recorded alone: the result, and
    how many lines were not recorded. Each of those goes to ``on_problem`` (default: the
    log) as it is met, ``FILE, line N: reason``: not UTF-8, too long, not JSON, no SES
    event, an unreadable event (a date outside UTC's years...), or an error recording it.
    The file is read a line at a time (``feedback.lines``): memory does not grow with it."""
    report = on_problem or (lambda problem: log.warning("%s", problem))
    result, bad = FeedbackResult(), 0
    suppressions = shared_suppressions(store)
    for line in read_lines(lines):
        problem = line.problem or _ingest_line(line, store, result, options, suppressions)
        if problem:
            bad += 1
            report(problem)
    return result, bad


def _ingest_line(
    line: Line,
    store: Store,
    result: FeedbackResult,
    options: FeedbackOptions | None,
    suppressions: SuppressionList,
) -> str:
    """Record one line's events; "" when done, else the line's problem."""
    try:
        found = list(unwrap(orjson.loads(line.text)))
    except Exception as err:  # hostile input: whatever reading it raises is its problem
        return line.fail(_why(err))
    if not found:
        return line.fail("no SES event in this line")
    try:
        result.add(
            ingest(store, [w.event for w in found], options=options, suppressions=suppressions)
        )
    except Exception as err:  # a store error, or a fault: this line only
        return line.fail(f"not recorded: {type(err).__name__}: {err}")
    return ""


def _per_message(invocation: Mapping[str, Any], unreadable: list[str]) -> Iterator[list[Wrapped]]:
    """The SES events of each record apart, so one bad record spoils nothing else; the
    SQS message id of one that cannot be read goes to ``unreadable`` (to fail alone)."""
    records = invocation.get("Records")
    parts: Iterable[Any] = (
        ({"Records": [r]} for r in records) if isinstance(records, list) else (invocation,)
    )
    for part in parts:
        try:
            yield list(unwrap(part))
        except Exception as err:  # hostile input: any error reading it drops it alone
            reason = f"unreadable SES event: {_why(err)}"
            found = _message_id(part)
            log.warning(json.dumps({"event": "ignored", "reason": reason, **found}))
            unreadable.extend(found.values())


def _why(err: Exception) -> str:
    """An error as a reason to log (bounded: what it quotes came from the network)."""
    if isinstance(err, orjson.JSONDecodeError):
        return f"not JSON: {err}"[:300]
    text = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
    return text[:300]


def _message_id(part: Any) -> dict[str, str]:
    records = part.get("Records") if isinstance(part, Mapping) else None
    first = records[0] if isinstance(records, list) and records else None
    found = first.get("messageId") if isinstance(first, Mapping) else None
    return {"message_id": found} if isinstance(found, str) else {}


def _topic_allowed(wrapped: Wrapped, topics: frozenset[str]) -> bool:
    if not topics or not wrapped.topic_arn or wrapped.topic_arn in topics:
        return True
    log.warning(
        json.dumps({"event": "ignored", "reason": f"topic {wrapped.topic_arn} not allowed"})
    )
    return False
