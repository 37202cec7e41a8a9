"""Encryption at rest, the webhook outbox, erasure, retention, failover and tracing,
together on one store.

Real parts: a file store and an S3 bucket (moto, server mode), each sealed with a
local key; a failover chain of a stopped SMTP server and an aiosmtpd one; a stdlib HTTP
receiver whose deliveries the Standard Webhooks library verifies; and the ``mailspool``
commands an operator runs (``status``, ``webhooks drain``, ``erase``, ``gc``) reading
the same environment. Retention judges records by
the times inside them; the test writes those times, so no test waits for an age.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from cfnlint.decode import cfn_yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from standardwebhooks.webhooks import Webhook

import mailspool
from mailspool.aws.template import template_text
from mailspool.cli import cli
from mailspool.config import Settings
from mailspool.delivery.factory import open_worker
from mailspool.delivery.traced import TracedSends
from mailspool.feedback.events import parse_ses_event
from mailspool.feedback.ingest import ingest
from mailspool.feedback.suppression import shared_suppressions
from mailspool.ops.erase import ERASURES, erase_address
from mailspool.ops.erase_redact import redact_bytes
from mailspool.spool import layout
from mailspool.spool.envelope import is_sealed
from mailspool.spool.records import FailedRecord, timestamp
from mailspool.spool.sealed_store import sealed
from mailspool.stores.base import Store
from mailspool.stores.file import FileStore
from mailspool.stores.s3 import S3Store
from mailspool.transports.failover_url import member_label
from mailspool.triggers.local import drain
from mailspool.webhook_rules import EventType
from mailspool.webhooks.deliver import CLAIM as OUTBOX_CLAIM
from mailspool.webhooks.events import address_digest, email_event
from mailspool.webhooks.outbox import PENDING, Outbox
from tests import ses_events
from tests.fixtures.smtp_server import SMTPSink
from tests.fixtures.webhook_receiver import WebhookReceiver, webhook_receiver
from tests.test_erase_redact import MATCH, json_values, plant

__all__ = ["webhook_receiver"]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ADDRESS = "ana.secret@example.org"
BUCKET = "mailspool-together"
SUBJECT = "Quarterly secret subject"


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture(params=["file", "s3"])
def place(request: pytest.FixtureRequest, spool: Path) -> Iterator[Store]:
    """The store as it holds bytes (beneath any seal): a folder, or a bucket on moto."""
    if request.param == "file":
        yield FileStore(spool)
        return
    request.getfixturevalue("aws")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    with closing(S3Store(bucket=BUCKET, prefix="spool")) as s3:
        yield s3


def stored(place: Store) -> dict[str, bytes]:
    """Every object (every log record's object, on S3) as stored, by key."""
    return {
        info.key: place.get(info.key)
        for info in place.list("")
        if not info.key.startswith(".leases")
    }


def in_clear(place: Store) -> list[str]:
    """Objects holding the address or the subject as written."""
    needles = (ADDRESS.encode(), b"ana.secret", SUBJECT.encode(), b"Quarterly")
    return sorted(key for key, data in stored(place).items() if any(n in data for n in needles))


def run(*args: str) -> str:
    """A ``mailspool`` command, with the settings of the environment."""
    answer = CliRunner().invoke(cli, list(args))
    assert answer.exit_code == 0, answer.output
    return answer.stdout


@pytest.fixture
def environment(
    place: Store, webhook_receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The settings an operator's commands read: the store, its key, the webhook URL."""
    key = new_key()
    monkeypatch.setenv("MAILSPOOL_STORE", place.url)
    monkeypatch.setenv("MAILSPOOL_ENCRYPTION_KEY", key)
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_URL", webhook_receiver.url)
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_SECRET", SECRET)
    return key


def stopped_url() -> str:
    """A server that was there and is gone: connection refused, so the chain moves on."""
    server = SMTPSink().start()
    url = server.url
    server.stop()
    return url


def test_a_sealed_store_with_webhooks_and_failover_keeps_nothing_in_clear(
    place: Store, smtp_server: SMTPSink, webhook_receiver: WebhookReceiver, environment: str
) -> None:
    settings = Settings.load(transport=f"failover({stopped_url()} {smtp_server.url})")
    with mailspool.request(settings=settings):
        for number in range(2):
            mailspool.send_mail(f"Ana <{ADDRESS}>", f"{SUBJECT} {number}", "<p>hi</p>")
    with open_worker(settings) as worker:
        worker.webhooks = None  # the outbox is left to `mailspool webhooks drain`
        assert drain(worker).sent == 2
    assert len(smtp_server.envelopes) == 2

    # the outbox waits in the store, sealed like the rest, and status counts it
    outbox = {name: data for name, data in stored(place).items() if "webhooks" in name}
    assert outbox
    assert all(is_sealed(data) for data in outbox.values())
    assert in_clear(place) == []
    assert json.loads(run("status", "--json"))["webhooks"]["pending"] == 4

    webhook_receiver.start()
    run("webhooks", "drain")
    assert json.loads(run("webhooks", "status", "--json"))["pending"] == 0
    bodies = [
        Webhook(SECRET).verify(delivery.body, delivery.headers)
        for delivery in webhook_receiver.deliveries
    ]
    sent = [body["data"] for body in bodies if body["type"] == "email.sent"]
    assert len(sent) == 2
    assert all(data["via"] == member_label(smtp_server.url) for data in sent)
    assert all("unanswered" not in data for data in sent)  # refused: provably not taken

    erased = json.loads(run("erase", ADDRESS, "--json"))
    audit = stored(place)[erased["record"]]
    assert is_sealed(audit)
    assert in_clear(place) == []
    assert json.loads(run("status", "--json"))["sent"] == 2


def failed_record(batch_id: str, failed_at: datetime) -> bytes:
    email = {"to": [ADDRESS], "subject": SUBJECT, "message": "x", "attachments": []}
    meta = {"from": "app@example.com"}
    return FailedRecord(
        batch_id, 0, "550 no", 1, False, timestamp(failed_at), False, None, meta, email
    ).encode()


def test_gc_reads_sealed_records_and_keeps_the_outbox_and_the_erasures(
    place: Store, environment: str
) -> None:
    store = sealed(place, (environment,))
    now = datetime.now(UTC)
    old, recent = layout.new_batch_id(), layout.new_batch_id()
    # written now (their files are new), failed two days and one hour ago by their records
    store.put(layout.failed_key(old, 0), failed_record(old, now - timedelta(days=2)))
    store.put(layout.failed_key(recent, 0), failed_record(recent, now - timedelta(hours=1)))
    event = email_event(EventType.SENT, old, 0, recipients=[ADDRESS])
    Outbox(store).add([event], now=(now - timedelta(days=30)).timestamp())
    erase_address("someone.else@example.org", store)
    kept = sorted(name for name in stored(place) if name.startswith((PENDING, ERASURES)))
    assert len(kept) >= 3  # the outbox bundle, the erasure key and its audit record

    output = run("gc", "--retention", "finished=1h,failed=1d,events=1h")

    assert "removed 0 finished batch(es), 1 failed e-mail(s)" in output
    left = stored(place)
    assert layout.failed_key(old, 0) not in left
    assert layout.failed_key(recent, 0) in left
    assert [name for name in kept if name not in left] == []
    assert in_clear(place) == []


def test_a_send_span_names_a_failover_chain_by_its_kind_not_its_members() -> None:
    chain = "failover(ses://eu-west-1 smtp://relay.example:587)"
    assert TracedSends(chain).scheme == "failover"
    assert TracedSends("smtp://relay.example:587").scheme == "smtp"


def test_erase_takes_the_address_digest_out_of_the_outbox_which_still_drains(
    place: Store, webhook_receiver: WebhookReceiver, environment: str
) -> None:
    store = sealed(place, (environment,))
    batch_id, other = layout.new_batch_id(), "bo@example.org"
    outbox = Outbox(store)
    outbox.add([email_event(EventType.SENT, batch_id, 0, recipients=[ADDRESS, other])])
    outbox.add([email_event(EventType.QUEUED, batch_id, 1, recipients=[f"Ana <{ADDRESS}>"])])
    digest, kept = address_digest(ADDRESS).encode(), address_digest(other)

    run("erase", ADDRESS)

    opened = [store.get(key) for key in store.keys(PENDING)]
    assert len(opened) == 2
    assert not any(digest in data for data in opened)
    assert any(kept.encode() in data for data in opened)
    assert in_clear(place) == []
    webhook_receiver.start()
    run("webhooks", "drain")
    bodies = [
        Webhook(SECRET).verify(delivery.body, delivery.headers)
        for delivery in webhook_receiver.deliveries
    ]
    assert sorted(body["type"] for body in bodies) == ["email.queued", "email.sent"]
    assert [body["data"].get("recipients") for body in bodies if body["type"] == "email.sent"] == [
        [kept]
    ]


@given(json_values, st.booleans(), st.lists(st.integers(0, 9), max_size=6))
def test_the_address_digest_is_erased_wherever_json_holds_it(
    value: Any, upper: bool, path: list[int]
) -> None:
    digest = address_digest(MATCH.canonical)
    data = orjson.dumps(plant(value, digest.upper() if upper else digest, path))
    redacted = redact_bytes(data, MATCH)
    assert digest.encode() not in redacted.data.lower()
    assert not MATCH.found_in(redacted.data)
    orjson.loads(redacted.data)


def test_the_template_gives_both_functions_the_encryption_and_webhook_settings() -> None:
    template = cfn_yaml.loads(template_text())
    assert template["Parameters"]["WebhookSecret"]["NoEcho"] is True
    for name in ("DeliverFunction", "SweeperFunction"):
        variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        for variable in (
            "MAILSPOOL_ENCRYPTION_KEY",
            "MAILSPOOL_WEBHOOK_URL",
            "MAILSPOOL_WEBHOOK_SECRET",
        ):
            assert variable in variables, (name, variable)
    rule = template["Rules"]["WebhookSecretWithUrl"]
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookSecret"}, ""]}]
    }


def test_a_priority_e_mail_through_a_failover_chain_names_its_member_in_its_event(
    place: Store, smtp_server: SMTPSink, webhook_receiver: WebhookReceiver, environment: str
) -> None:
    chain = f"failover({stopped_url()} {smtp_server.url})"
    settings = Settings.load(transport=chain, priority_transport=chain)
    with mailspool.request(settings=settings):
        assert mailspool.send_mail(ADDRESS, SUBJECT, "reset link", priority=True)
    assert len(smtp_server.envelopes) == 1
    assert in_clear(place) == []

    webhook_receiver.start()
    run("webhooks", "drain")
    [delivery] = webhook_receiver.deliveries
    body = Webhook(SECRET).verify(delivery.body, delivery.headers)
    assert body["type"] == "email.sent"
    assert body["data"]["priority"] is True
    assert body["data"]["via"] == member_label(smtp_server.url)


EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """The SDK as an application configures it, for this test only (as in
    ``tests/test_tracing.py``: the other tests of a run see mailspool without an SDK)."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", PROVIDER)
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def test_a_sealed_batch_carries_its_trace_through_a_failover_send_and_its_complaint(
    place: Store, smtp_server: SMTPSink, environment: str, spans: InMemorySpanExporter
) -> None:
    settings = Settings.load(transport=f"failover({stopped_url()} {smtp_server.url})")
    tracer = trace.get_tracer("tests")
    with (
        tracer.start_as_current_span("POST /signup") as request,
        mailspool.request(settings=settings),
    ):
        mailspool.send_mail(ADDRESS, SUBJECT, "welcome")
    with open_worker(settings) as worker:
        worker.webhooks = None
        [batch] = drain(worker).batches
    store = sealed(place, (environment,))
    complaint = parse_ses_event(ses_events.complaint("ses-1", ADDRESS))
    ingest(store, [dataclasses.replace(complaint, batch=batch.batch_id, index=0)])

    finished = spans.get_finished_spans()
    assert {s.context.trace_id for s in finished if s.context} == {
        request.get_span_context().trace_id
    }
    [send] = [s for s in finished if s.kind is trace.SpanKind.CLIENT]
    assert send.name == "send failover"
    assert (send.attributes or {})["mailspool.transport.scheme"] == "failover"
    assert [s for s in finished if s.name == "complained queue"]  # read from the sealed batch
    said = " ".join(f"{s.name} {dict(s.attributes or {})!r}" for s in finished)
    assert ADDRESS not in said
    assert SUBJECT not in said
    assert in_clear(place) == []


def test_after_a_rotation_the_erasure_key_needs_the_old_key_listed_and_fails_closed(
    place: Store, smtp_server: SMTPSink
) -> None:
    old, new = new_key(), new_key()
    before = sealed(place, (old,))
    shared_suppressions(before).add(ADDRESS)
    erase_address(ADDRESS, before)  # the erasure key and the keyed entry, sealed by `old`

    def hand_off_and_drain(*keys: str) -> int:
        settings = Settings.load(store=place.url, transport=smtp_server.url, encryption_key=keys)
        with mailspool.request(settings=settings):
            mailspool.send_mail("bo@example.org", "hello", "hi")
            mailspool.send_mail(ADDRESS, "hello", "hi")
        with open_worker(settings) as worker:
            return drain(worker).sent

    assert hand_off_and_drain(new) == 0  # the old key dropped: nothing is sent
    assert smtp_server.envelopes == []
    assert hand_off_and_drain(new, old) == 2  # listed again: both batches, bo only
    assert [tuple(e.rcpt_tos) for e in smtp_server.envelopes] == [("bo@example.org",)] * 2


def test_erase_waits_for_a_drain_of_the_outbox_it_would_race(
    place: Store, environment: str
) -> None:
    """A drain under way writes back the bundles it read: erase leaves the outbox while
    a drain holds it, says so, and erases it on the next run."""
    store = sealed(place, (environment,))
    Outbox(store).add([email_event(EventType.SENT, layout.new_batch_id(), 0, recipients=[ADDRESS])])
    digest = address_digest(ADDRESS).encode()
    drain_lease = store.claim(OUTBOX_CLAIM, "a draining worker", 300)
    assert drain_lease is not None

    held = erase_address(ADDRESS, store)
    assert held.skipped == ["webhooks/"]
    assert not held.complete
    assert any(digest in store.get(key) for key in store.keys(PENDING))

    store.release(drain_lease)
    again = erase_address(ADDRESS, store)
    assert again.complete
    assert not any(digest in store.get(key) for key in store.keys(PENDING))
