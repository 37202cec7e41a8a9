"""Webhook events: their encoding and stable ids (property tests), the outbox records
read back from hostile bytes, the settings' rules, verification in the application
(plain, Django, Flask), and the events of feedback and of a cancellation."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import RequestFactory
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from tests import django_settings

django_settings.configure()

import mailspool  # noqa: E402
from mailspool.config import SettingError, Settings  # noqa: E402
from mailspool.delivery.steps import BatchEnd, WebhookEvents  # noqa: E402
from mailspool.errors import InvalidRecord, WebhookRefused  # noqa: E402
from mailspool.feedback.events import parse_ses_event  # noqa: E402
from mailspool.feedback.ingest import FeedbackOptions, ingest  # noqa: E402
from mailspool.integrations.django_webhooks import webhook_view  # noqa: E402
from mailspool.integrations.flask_webhooks import webhook_event  # noqa: E402
from mailspool.spool import layout  # noqa: E402
from mailspool.spool.batch import decode  # noqa: E402
from mailspool.spool.records import LedgerEntry  # noqa: E402
from mailspool.stores.file import FileStore  # noqa: E402
from mailspool.stores.memory import MemoryStore  # noqa: E402
from mailspool.webhook_rules import ALL_EVENTS, EventType  # noqa: E402
from mailspool.webhooks import WebhookEvent, verify  # noqa: E402
from mailspool.webhooks.events import email_event, event_id  # noqa: E402
from mailspool.webhooks.outbox import PENDING, Bundle, Outbox  # noqa: E402
from mailspool.webhooks.signing import signer  # noqa: E402
from tests import ses_events  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
kinds = st.sampled_from(list(EventType))
names = st.text(min_size=1, max_size=40)
indices = st.integers(min_value=0, max_value=10**6)


@given(kinds, names, indices)
def test_an_event_id_is_the_same_for_the_same_subject(kind: EventType, batch: str, i: int) -> None:
    first, again = email_event(kind, batch, i), email_event(kind, batch, i)
    assert first.id == again.id == event_id(kind.value, batch, i)
    assert first.id.startswith("evt_")
    assert len(first.id) == 36


@given(st.tuples(kinds, names, indices), st.tuples(kinds, names, indices))
def test_different_subjects_have_different_ids(
    one: tuple[EventType, str, int], other: tuple[EventType, str, int]
) -> None:
    if one != other:
        assert email_event(*one).id != email_event(*other).id


@given(kinds, names, indices, st.lists(st.emails(), max_size=5), st.text(max_size=2000))
def test_an_event_reads_back_as_written(
    kind: EventType, batch: str, i: int, to: list[str], reason: str
) -> None:
    event = email_event(kind, batch, i, recipients=to, reason=reason or None)
    assert WebhookEvent.from_record(json.loads(json.dumps(event.to_record()))) == event
    bundle = Bundle((event,), attempts=2, next_try=5.0, error="x")
    assert Bundle.decode(bundle.encode()) == bundle
    assert not any(address in event.payload().decode() for address in to)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@given(json_values)
def test_hostile_records_raise_invalid_record_only(value: Any) -> None:
    for attempt in (
        lambda: WebhookEvent.from_record(value),
        lambda: Bundle.decode(json.dumps(value).encode()),
    ):
        with contextlib.suppress(InvalidRecord):
            attempt()


def test_a_bundle_keeps_its_good_events_beside_a_bad_one() -> None:
    good = email_event(EventType.SENT, "b", 1).to_record()
    document = {"version": 1, "attempts": 0, "next_try": 0, "events": [good, {"id": 3}]}
    bundle = Bundle.decode(json.dumps(document).encode())
    assert [event.id for event in bundle.events] == [good["id"]]
    assert "'id'" in bundle.unreadable[0][1]


def signed(event: WebhookEvent, at: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    body = event.payload()
    moment = at or datetime.now(UTC)
    headers = {
        "Webhook-Id": event.id,
        "Webhook-Timestamp": str(int(moment.timestamp())),
        "Webhook-Signature": signer(SECRET).sign(event.id, moment, body),
    }
    return body, headers


def test_verify_takes_a_genuine_delivery_and_refuses_tampered_or_replayed_ones() -> None:
    event = email_event(EventType.BOUNCED, "b", 0, reason="550")
    body, headers = signed(event)
    assert verify(body, headers, SECRET) == event
    with pytest.raises(WebhookRefused, match="signature"):
        verify(body.replace(b"550", b"250"), headers, SECRET)
    old_body, old_headers = signed(event, datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(WebhookRefused, match="too old"):
        verify(old_body, old_headers, SECRET)
    with pytest.raises(WebhookRefused, match="headers"):
        verify(body, {}, SECRET)
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    with pytest.raises(WebhookRefused):
        verify(body, headers, other)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("webhook_url", "ftp://example.com/x"),
        ("webhook_url", "https:///no-host"),
        ("webhook_secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("webhook_secret", "whsec_not*base64"),
        ("webhook_secret", "whsec_c2hvcnQ="),
        ("webhook_events", "sent,teleported"),
    ],
)
def test_a_bad_webhook_setting_is_refused_by_name(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"MAILSPOOL_{name.upper()}", value)
    with pytest.raises(SettingError, match=f"MAILSPOOL_{name.upper()}") as caught:
        Settings.load()
    if name == "webhook_secret":
        assert value not in str(caught.value)  # a secret is never shown


def test_events_default_to_all_and_take_short_names() -> None:
    assert Settings.load().webhook_events == ALL_EVENTS
    chosen = Settings.load(webhook_events="sent, email.bounced").webhook_events
    assert chosen == {"email.sent", "email.bounced"}


def test_the_django_decorator_calls_the_view_with_verified_events_only() -> None:
    received: list[WebhookEvent] = []

    @webhook_view(secret=SECRET)
    def view(request: Any, event: WebhookEvent) -> Any:
        from django.http import HttpResponse

        received.append(event)
        return HttpResponse(status=204)

    event = email_event(EventType.SENT, "b", 2)
    body, headers = signed(event)
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    factory = RequestFactory()
    good = factory.post("/hooks", body, content_type="application/json", **extra)
    assert view(good).status_code == 204
    bad = factory.post("/hooks", body + b" ", content_type="application/json", **extra)
    assert view(bad).status_code == 400
    assert view(factory.get("/hooks")).status_code == 405
    assert received == [event]


def test_the_flask_helper_returns_the_event_or_answers_400() -> None:
    app = Flask(__name__)
    app.config["MAILSPOOL_WEBHOOK_SECRET"] = SECRET

    @app.post("/hooks")
    def hooks() -> tuple[str, int]:
        return webhook_event().id, 200

    event = email_event(EventType.SENT, "b", 3)
    body, headers = signed(event)
    client = app.test_client()
    assert client.post("/hooks", data=body, headers=headers).get_data(as_text=True) == event.id
    assert client.post("/hooks", data=body[:-1], headers=headers).status_code == 400


def test_feedback_writes_bounced_complained_and_suppressed_events_once_each() -> None:
    store = MemoryStore()
    options = FeedbackOptions(webhook_events=frozenset(ALL_EVENTS))
    feedback = [
        parse_ses_event(ses_events.bounce("id-1", "gone@example.com")),
        parse_ses_event(ses_events.complaint("id-2", "angry@example.com")),
    ]
    ingest(store, feedback, options=options)
    ingest(store, feedback, options=options)  # a redelivery: seen, nothing more
    events = [e for key in store.keys(PENDING) for e in Bundle.decode(store.get(key)).events]
    kinds = sorted(event.type.value for event in events)
    assert kinds == ["email.bounced", "email.complained", "email.suppressed", "email.suppressed"]
    assert all("@" not in json.dumps(event.data) for event in events)


def test_a_cancelled_email_has_its_event(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_URL", "http://127.0.0.1:9/hooks")
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_EVENTS", "cancelled")
    later = datetime.now(UTC) + timedelta(days=1)
    settings = Settings.load(store=store.url)
    with mailspool.request(store=store, settings=settings):
        mailspool.send_mail("a@example.com", "later", "<p>x</p>", send_at=later, key="k-1")
    assert mailspool.cancel("k-1", store=store)
    [key] = store.keys(PENDING)
    [event] = Bundle.decode(store.get(key)).events
    assert event.type is EventType.CANCELLED


def test_a_batch_run_s_events_and_a_rerun_s_are_the_same() -> None:
    store = MemoryStore()
    settings = Settings.load(store=store.url)
    with mailspool.request(store=store, settings=settings) as scope:
        for number in range(3):
            mailspool.send_mail(f"u{number}@example.com", "n", "<p>x</p>")
    [key] = scope.keys
    batch = decode(store.get(key), source=key)
    batch_id = layout.batch_id_from_key(key)
    refused = {"Cc.Gone@Example.com": "550 5.1.1 no such user"}
    entries = {0: LedgerEntry.sent(0, "<id-0>", 1, refused), 1: LedgerEntry.failed(1, "550", 1)}
    end = BatchEnd(batch, batch_id, entries, finished=False)
    for _ in range(2):  # a run, then the same batch run again by a new process
        WebhookEvents(Outbox(store)).concluded(end)
    runs = [Bundle.decode(store.get(k)).events for k in store.keys(PENDING)]
    again = tuple(replace(e, timestamp=runs[0][i].timestamp) for i, e in enumerate(runs[1]))
    assert runs[0] == again  # the same ids and data; only the time may differ
    assert [(e.type.value, e.data["index"]) for e in runs[0]] == [
        ("email.sent", 0),
        ("email.failed", 1),
        ("email.deferred", 2),
    ]
    assert runs[0][0].data["message_id"] == "<id-0>"
    assert runs[0][0].data["refused"] == [hashlib.sha256(b"cc.gone@example.com").hexdigest()]


any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=30)


@given(kinds, any_text, indices, st.lists(any_text, max_size=3), any_text)
def test_any_text_makes_an_event_that_encodes(
    kind: EventType, batch: str, i: int, to: list[str], reason: str
) -> None:
    event = email_event(kind, batch, i, recipients=to, reason=reason, message_id=reason)
    assert Bundle.decode(Bundle((event,)).encode()).events[0].id == event.id
    assert event.payload()


def test_a_batch_run_again_in_the_same_process_writes_only_what_is_new() -> None:
    store = MemoryStore()
    settings = Settings.load(store=store.url)
    with mailspool.request(store=store, settings=settings) as scope:
        mailspool.send_mail(["a@example.com"], "n", "<p>x</p>")
        mailspool.send_mail(["b@example.com"], "n", "<p>x</p>")
    [key] = scope.keys
    batch = decode(store.get(key), source=key)
    batch_id = layout.batch_id_from_key(key)
    step = WebhookEvents(Outbox(store))
    step.concluded(BatchEnd(batch, batch_id, {0: LedgerEntry.sent(0, "<0>", 1)}, finished=False))
    step.concluded(BatchEnd(batch, batch_id, {0: LedgerEntry.sent(0, "<0>", 1)}, finished=False))
    entries = {0: LedgerEntry.sent(0, "<0>", 1), 1: LedgerEntry.sent(1, "<1>", 2)}
    step.concluded(BatchEnd(batch, batch_id, entries, finished=True))
    kinds = [
        [(event.type.value, event.data["index"]) for event in Bundle.decode(store.get(k)).events]
        for k in store.keys(PENDING)
    ]
    assert kinds == [[("email.sent", 0), ("email.deferred", 1)], [("email.sent", 1)]]


def test_a_priority_email_sent_at_once_has_its_event(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    settings = Settings.load(
        store=store.url,
        transport="memory:wh-priority",
        webhook_url="http://127.0.0.1:9/hooks",
        webhook_events="sent",
    )
    with mailspool.request(store=store, settings=settings):
        assert mailspool.send_mail("a@example.com", "now", "<p>x</p>", priority=True)
    [key] = store.keys(PENDING)
    [event] = Bundle.decode(store.get(key)).events
    assert event.type is EventType.SENT
    assert event.data["priority"] is True
    assert event.id == event_id("email.sent", "priority", event.data["message_id"])
