"""SES events in both formats and every wrapper; applying them, idempotently."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailspool.feedback import hooks, layout
from mailspool.feedback.events import EventKind, FeedbackEvent, parse_ses_event, unwrap
from mailspool.feedback.ingest import FeedbackOptions, ingest, read_history
from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.stores.memory import MemoryStore
from tests import ses_events


@pytest.mark.parametrize("format", ["eventType", "notificationType"])
def test_a_hard_bounce_in_either_format(format: str) -> None:
    event = parse_ses_event(ses_events.bounce("id-1", "gone@example.com", format=format))
    assert event.kind is EventKind.BOUNCED
    assert event.permanent
    assert event.provider_id == "id-1"
    assert event.recipients == ("gone@example.com",)
    assert event.diagnostics == {"gone@example.com": "smtp; 550 5.1.1 user unknown"}


def test_every_event_publishing_type_is_understood() -> None:
    kinds = {
        "Send": EventKind.SENT,
        "Reject": EventKind.REJECTED,
        "DeliveryDelay": EventKind.DELAYED,
        "RenderingFailure": EventKind.RENDERING_FAILED,
        "Open": EventKind.OPENED,
        "Click": EventKind.CLICKED,
        "Subscription": EventKind.SUBSCRIPTION,
    }
    for name, kind in kinds.items():
        payload = {"eventType": name, "mail": ses_events.mail("id-2", ["a@example.com"])}
        event = parse_ses_event(payload)
        assert (event.kind, event.recipients) == (kind, ("a@example.com",))


def wrappers(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    envelope = ses_events.sns_envelope(message)
    return {
        "sns to lambda": {"Records": [{"EventSource": "aws:sns", "Sns": envelope}]},
        "sns in sqs": {
            "Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": json.dumps(envelope)}]
        },
        "raw in sqs": {
            "Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": json.dumps(message)}]
        },
        "eventbridge": ses_events.eventbridge(message),
        "eventbridge in sqs": {
            "Records": [
                {
                    "eventSource": "aws:sqs",
                    "messageId": "m1",
                    "body": json.dumps(ses_events.eventbridge(message)),
                }
            ]
        },
        "sns over http": envelope,
        "bare": message,
    }


def test_every_route_yields_the_same_event() -> None:
    message = ses_events.complaint("id-3", "angry@example.com")
    found = {name: list(unwrap(payload)) for name, payload in wrappers(message).items()}
    ids = {name: [w.event.id for w in items] for name, items in found.items()}
    assert all(len(v) == 1 for v in ids.values()), ids
    assert len({v[0] for v in ids.values()}) == 1  # one event, whatever the route
    assert found["sns in sqs"][0].sqs_message_id == "m1"
    assert found["sns to lambda"][0].topic_arn.endswith(":mailspool-ses")


def test_an_s3_notification_holds_no_ses_event() -> None:
    s3 = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}]}
    assert list(unwrap(s3)) == []


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_hostile_input_only_ever_raises_value_error(payload: Any) -> None:
    for candidate in (payload, {"eventType": "Bounce", "mail": payload, "bounce": payload}):
        with contextlib.suppress(ValueError):
            list(unwrap(candidate))


def test_the_transport_tags_name_the_email() -> None:
    payload = ses_events.delivery("id-7", "a@example.com")
    payload["mail"]["tags"].update(
        {"mailspool-batch": ["20261129T070000000000Z-1a2b3c4d"], "mailspool-index": ["4"]}
    )
    event = parse_ses_event(payload)
    assert (event.batch, event.index) == ("20261129T070000000000Z-1a2b3c4d", 4)
    assert FeedbackEvent.from_dict(event.as_dict()) == event
    untagged = parse_ses_event(ses_events.delivery("id-8", "a@example.com"))
    assert (untagged.batch, untagged.index) == (None, None)


def test_an_unknown_type_names_the_field() -> None:
    with pytest.raises(ValueError, match="eventType"):
        parse_ses_event({"eventType": "Teleport", "mail": ses_events.mail("x", [])})


def events(*payloads: dict[str, Any]) -> list[FeedbackEvent]:
    return [parse_ses_event(p) for p in payloads]


def test_hard_bounces_and_complaints_suppress_soft_bounces_do_not() -> None:
    store = MemoryStore()
    report = ingest(
        store,
        events(
            ses_events.bounce("id-1", "gone@example.com"),
            ses_events.complaint("id-2", "angry@example.com"),
            ses_events.bounce("id-3", "full@example.com", permanent=False),
        ),
    )
    assert (report.events, report.new, report.suppressed) == (3, 3, 2)
    suppressions = SuppressionList(store)
    gone = suppressions.get("gone@example.com")
    assert gone is not None
    assert (gone.reason, gone.diagnostic) == (Reason.BOUNCE, "smtp; 550 5.1.1 user unknown")
    angry = suppressions.get("angry@example.com")
    assert angry is not None
    assert (angry.reason, angry.diagnostic) == (Reason.COMPLAINT, "abuse")
    assert not suppressions.is_suppressed("full@example.com")


def test_soft_bounces_suppress_past_the_threshold_within_the_window() -> None:
    store = MemoryStore()
    options = FeedbackOptions(soft_bounce_limit=3, soft_bounce_window=7 * 86400)
    days = ["2026-11-01", "2026-11-20", "2026-11-24", "2026-11-26"]
    soft = [
        ses_events.bounce(f"id-{d}", "full@example.com", permanent=False, when=f"{d}T00:00:00Z")
        for d in days
    ]
    ingest(store, events(*soft[:3]), options=options)  # the first is outside the window
    assert not SuppressionList(store).is_suppressed("full@example.com")
    ingest(store, events(soft[3]), options=options)
    entry = SuppressionList(store).get("full@example.com")
    assert entry is not None
    assert entry.diagnostic.startswith("3 soft bounces in 7 days")


def test_a_redelivered_event_changes_nothing() -> None:
    store, seen = MemoryStore(), []
    hooks.register(seen.append)
    try:
        soft = events(*[ses_events.bounce("id-9", "full@example.com", permanent=False)] * 2)
        first = ingest(store, soft[:1])
        snapshot = {key: store.get(key) for key in store.keys(layout.SUPPRESSION)}
        again = ingest(store, soft * 3)  # the same soft bounce, delivered three more times
    finally:
        hooks.unregister(seen.append)
    assert (first.new, again.new) == (1, 0)
    assert len(seen) == 1
    assert {key: store.get(key) for key in store.keys(layout.SUPPRESSION)} == snapshot == {}
    history = read_history(store, layout.history_key("full@example.com"))
    assert [e.id for e in history] == [soft[0].id]


def test_a_failing_hook_does_not_stop_the_others() -> None:
    calls: list[str] = []

    def broken(event: FeedbackEvent) -> None:
        raise RuntimeError("boom")

    def working(event: FeedbackEvent) -> None:
        calls.append(event.provider_id)

    hooks.register(broken)
    hooks.register(working)
    try:
        ingest(MemoryStore(), events(ses_events.delivery("id-5", "a@example.com")))
    finally:
        hooks.unregister(broken)
        hooks.unregister(working)
    assert calls == ["id-5"]


def test_history_records_round_trip() -> None:
    event = events(ses_events.delivery("id-6", "a@example.com"))[0]
    assert FeedbackEvent.from_dict(json.loads(json.dumps(event.as_dict()))) == event
