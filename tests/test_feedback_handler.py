"""SES events handed to ``mailspool.aws.handler`` directly: SNS and EventBridge
invocations, and what the handler answers when the store is out of reach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailspool.aws.lambda_handler import BatchNotDelivered, handle
from mailspool.feedback.suppression import SuppressionList
from mailspool.stores import open_store
from mailspool.stores.memory import MemoryStore
from mailspool.transports.memory import MemoryTransport
from tests import ses_events


class Context:
    aws_request_id = "request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


def test_an_sns_invocation_and_an_eventbridge_event_are_recorded() -> None:
    store = MemoryStore()
    bounce = ses_events.bounce("id-1", "gone@example.com")
    sns = {"Records": [{"EventSource": "aws:sns", "Sns": ses_events.sns_envelope(bounce)}]}
    assert handle(sns, Context(), store=store, transport=MemoryTransport())["events"] == 1
    complaint = ses_events.eventbridge(ses_events.complaint("id-2", "angry@example.com"))
    assert handle(complaint, Context(), store=store, transport=MemoryTransport())["events"] == 1
    suppressions = SuppressionList(store)
    assert suppressions.is_suppressed("gone@example.com")
    assert suppressions.is_suppressed("angry@example.com")


def unreachable_store(tmp_path: Path) -> Any:
    """A file store whose folder is a file: every write fails as a full disk would."""
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    return open_store(f"file://{blocked}")


def test_an_event_that_cannot_be_recorded_is_retried(tmp_path: Path) -> None:
    store = unreachable_store(tmp_path)
    event = ses_events.bounce("id-3", "gone@example.com")
    record = {
        "eventSource": "aws:sqs",
        "messageId": "m-1",
        "body": json.dumps(ses_events.sns_envelope(event)),
    }
    answer = handle({"Records": [record]}, Context(), store=store, transport=MemoryTransport())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    sns = {"Records": [{"EventSource": "aws:sns", "Sns": ses_events.sns_envelope(event)}]}
    with pytest.raises(BatchNotDelivered, match="SES events not recorded"):
        handle(sns, Context(), store=store, transport=MemoryTransport())


def test_with_topics_set_the_handler_records_only_theirs(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    monkeypatch.setenv("MAILSPOOL_SNS_TOPICS", "arn:aws:sns:us-east-1:123456789012:ours")
    bounce = ses_events.bounce("id-4", "gone@example.com")
    other = {"Records": [{"EventSource": "aws:sns", "Sns": ses_events.sns_envelope(bounce)}]}
    assert "events" not in handle(other, Context(), store=store, transport=MemoryTransport())
    assert not SuppressionList(store).is_suppressed("gone@example.com")
    ours = ses_events.sns_envelope(bounce, topic="arn:aws:sns:us-east-1:123456789012:ours")
    handle(
        {"Records": [{"EventSource": "aws:sns", "Sns": ours}]},
        Context(),
        store=store,
        transport=MemoryTransport(),
    )
    assert SuppressionList(store).is_suppressed("gone@example.com")
