"""One record the Lambda handler cannot read costs only itself: the handler logs it with
its reason and drops it, and delivers and records every other record of the invocation.
Against moto in server mode: real S3 notifications from a real SQS queue (the ``stack``
of ``tests/test_aws_handler.py``), and the SES events beside them."""

from __future__ import annotations

import collections
import json
import logging
from typing import Any

import pytest

from mailspool.aws import handler
from mailspool.aws.lambda_handler import handle
from mailspool.aws.sweeper import sweeper_handler
from mailspool.feedback.suppression import SuppressionList
from mailspool.stores.memory import MemoryStore
from mailspool.transports.memory import MemoryTransport
from tests import ses_events
from tests.test_aws_handler import Context, Stack, hand_off, stack

__all__ = ["stack"]  # the fixture


def nested(depth: int) -> str:
    """A JSON object nested ``depth`` deep."""
    return '{"a":' * depth + "1" + "}" * depth


def sns_in_sns(depth: int) -> dict[str, Any]:
    """SNS envelopes wrapped in each other ``depth`` deep, as objects, an S3 event inside."""
    inner: dict[str, Any] = {"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}
    for _ in range(depth):
        inner = {"Type": "Notification", "Message": inner}
    return inner


def sqs(message_id: str, body: Any) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return {"messageId": message_id, "eventSource": "aws:sqs", "body": text}


def soft_bounce_dated(when: str, provider_id: str, address: str) -> dict[str, Any]:
    return ses_events.sns_envelope(
        ses_events.bounce(provider_id, address, permanent=False, when=when)
    )


#: Records no delivery could ever read, each with the reason the handler logs.
HOSTILE = [
    (
        sqs("year-1", soft_bounce_dated("0001-01-01T00:00:00+01:00", "id-1", "a@example.org")),
        "outside the years 1 to 9999",
    ),
    (sqs("deep-1000", nested(1000)), "unknown event shape"),
    (sqs("deep-5000", nested(5000)), "not JSON"),
    (sqs("wrapped-20", sns_in_sns(20)), "wrapped more than"),
    (sqs("sns-text", {"Records": [{"Sns": "not an object"}]}), "not an object"),
    (sqs("s3-odd", {"Records": [{"s3": {"bucket": "b", "object": 5}}]}), "without bucket/key"),
    (sqs("ses-odd", {**ses_events.bounce("id-2", "b@example.org"), "bounce": 7}), "'bounce'"),
]


def test_bad_records_fail_alone_and_the_rest_are_delivered_and_recorded(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    hand_off(3)
    hand_off(2, start=3)
    batches = stack.receive()
    assert len(batches) == 2
    good_bounce = sqs("bounce", ses_events.sns_envelope(ses_events.bounce("id-3", "c@example.org")))
    old_soft = sqs("year-1-utc", soft_bounce_dated("0001-01-01T00:00:00Z", "id-4", "d@example.org"))
    records = [r for r, _ in HOSTILE[:4]] + [batches[0]] + [r for r, _ in HOSTILE[4:]]
    records += [good_bounce, old_soft, batches[1]]
    with caplog.at_level(logging.INFO, logger="mailspool"):
        answer = handle({"Records": records}, Context())
    # each record no delivery can read fails alone (SQS moves it to the dead-letter queue)
    failed = [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]
    assert sorted(failed) == sorted(r["messageId"] for r, _ in HOSTILE)  # each once
    assert stack.recipients() == collections.Counter(f"user{i}@example.org" for i in range(5))
    suppressions = SuppressionList(stack.store)
    assert suppressions.is_suppressed("c@example.org")
    assert not suppressions.is_suppressed("a@example.org")
    logged = caplog.text
    for _, reason in HOSTILE:
        assert reason in logged


def test_a_soft_bounce_dated_year_1_is_counted_without_overflow() -> None:
    store = MemoryStore()
    for number, when in enumerate(["0001-01-01T00:00:00Z", "0001-01-01T00:00:01Z"]):
        event = soft_bounce_dated(when, f"id-{number}", "e@example.org")
        record = sqs(f"m{number}", event)
        answer = handle({"Records": [record]}, Context(), store=store, transport=MemoryTransport())
        assert answer == {"batchItemFailures": []}
    third = sqs("m3", soft_bounce_dated("0001-01-01T00:00:02Z", "id-3", "e@example.org"))
    handle({"Records": [third]}, Context(), store=store, transport=MemoryTransport())
    assert SuppressionList(store).is_suppressed("e@example.org")  # 3 within 7 days


def test_the_handler_takes_a_none_context_as_no_deadline(stack: Stack) -> None:
    hand_off(4)
    [record] = stack.receive()
    assert handler({"Records": [record]}, None) == {"batchItemFailures": []}
    assert sum(stack.recipients().values()) == 4


def test_an_event_that_is_not_an_object_is_ignored() -> None:
    store = MemoryStore()
    for event in (None, [], "text", 5):
        answer = handle(event, None, store=store, transport=MemoryTransport())  # type: ignore[arg-type]
        assert answer == {"batches": 0, "sent": 0, "retry": 0}


def test_the_sweeper_takes_a_none_context_as_no_deadline(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    hand_off(2)
    stack.receive()  # the notification is lost: the sweeper re-drives the batch
    monkeypatch.setenv("MAILSPOOL_SWEEP_AFTER", "0")
    report = sweeper_handler({}, None)
    assert (report["event"], report["request_id"], report["redriven"]) == ("sweep", "local", 1)
    assert sum(stack.recipients().values()) == 2
