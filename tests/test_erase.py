"""``mailspool erase``: after it, no byte of the store names the address, in any spelling
or encoding, except through its keyed hash; later mail to it is still refused by the
worker's screen; mail to others still goes. On a file store and on S3 (moto, server
mode), with a real SMTP server (aiosmtpd) taking the deliveries."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from click.testing import CliRunner

import mailspool
from mailspool.cli import cli
from mailspool.config import Settings
from mailspool.delivery.steps import SuppressionScreen
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import StoreError
from mailspool.feedback.events import EventKind, FeedbackEvent
from mailspool.feedback.ingest import ingest
from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.message import Attachment, Message
from mailspool.ops import admin
from mailspool.ops.erase import erase_address
from mailspool.producer.fallback import fallback_url_for
from mailspool.spool import layout
from mailspool.spool.records import LedgerEntry, encode_entries
from mailspool.spool.schedule import SCHEDULED
from mailspool.spool.sealed_store import as_stored, open_stored, sealed
from mailspool.stores.base import Store
from mailspool.stores.file import FileStore
from mailspool.stores.s3 import S3Store
from mailspool.transports import open_transport
from tests.fixtures.smtp_server import SMTPSink

FAST = WorkerOptions(concurrency=2, retry_base=0.001, retry_cap=0.01)
BUCKET = "mailspool-erase"
ADDRESS = "Ana Müller <Ana@Bücher.Example>"
ASCII = "ana@xn--bcher-kva.example"
#: Every way the address may sit in a byte of the store (compared lower-cased).
FORMS = [
    "ana@bücher.example".encode(),
    ASCII.encode(),
    b"ana@b\\u00fccher.example",  # JSON with \u escapes
    "müller".encode(),  # the display name
    b"m=c3=bcller",  # the display name as an RFC 2047 "Q" encoded-word
    hashlib.sha256(ASCII.encode()).hexdigest().encode(),  # the plain hash of older keys
]
#: Compared as they are (base64 is case-sensitive).
EXACT = [base64.b64encode(ASCII.encode()), base64.b64encode("Ana Müller".encode())]


@pytest.fixture(params=["file", "s3"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """The store under test and a file fallback store."""
    fallback = FileStore(tmp_path / "fallback")
    if request.param == "file":
        yield FileStore(tmp_path / "spool"), fallback
        return
    request.getfixturevalue("aws")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    with closing(S3Store(bucket=BUCKET, prefix="spool")) as store:
        yield store, fallback


def every_object(store: Store) -> Iterator[tuple[str, bytes]]:
    """Every key and object the backend holds, its own files (leases) included."""
    if isinstance(store, FileStore):
        for folder, _, files in os.walk(store.root):
            for name in files:
                path = Path(folder, name)
                yield str(path.relative_to(store.root)), path.read_bytes()
        return
    client = boto3.client("s3")
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            yield item["Key"], body


def mentions(stores: tuple[Store, ...]) -> list[str]:
    found = []
    for store in stores:
        for key, data in every_object(store):
            text = key.encode() + b"\n" + data
            if any(form in text.lower() for form in FORMS) or any(f in text for f in EXACT):
                found.append(key)
    return found


def queue(store: Store, messages: list[Message]) -> list[str]:
    with mailspool.request(store=store, settings=Settings.load(store="memory:unused")) as scope:
        for message in messages:
            mailspool.send_message(message, priority=False)
    return list(scope.keys)


def deliver(store: Store, sink: SMTPSink) -> None:
    """A worker with a fresh suppression list (as another process would have)."""
    with closing(open_transport(sink.url)) as transport:
        worker = Worker(
            store, transport, options=FAST, steps=[SuppressionScreen(SuppressionList(store))]
        )
        for key in list(store.keys(layout.QUEUE)):
            worker.deliver(key)


def returned_message() -> bytes:
    """A bounce SES receiving stored: the address in a header and in a base64 part."""
    message = EmailMessage()
    message["To"] = "bounces@example.com"
    message["Subject"] = "Undelivered Mail Returned to Sender"
    message.set_content(f"Final-Recipient: rfc822; {ASCII}\n", cte="base64")
    return message.as_bytes()


def event(kind: EventKind, number: int) -> FeedbackEvent:
    return FeedbackEvent(
        id=f"event-{number}",
        kind=kind,
        provider_id=f"0100-{number}",
        timestamp="2026-12-01T10:00:00Z",
        recipients=(ASCII, "bob@example.com"),
        diagnostics={ASCII: f"250 2.0.0 <{ASCII}> ok", "bob@example.com": "250 ok"},
    )


def finished_mail(store: Store, sink: SMTPSink) -> None:
    """Sent, partly refused and failed e-mails, events, a suppression (for the account
    and for one SES tenant), a quarantined file and a returned message, all naming the
    address."""
    sink.refuse_recipient(ASCII)
    queue(
        store,
        [
            Message(to=(ADDRESS,), subject="Your reset link", text="secret for Ana"),
            Message(to=(ADDRESS, "bob@example.com"), subject="Team", text="cc ana@bücher.example"),
            Message(to=("carol@example.com",), subject=f"About {ASCII.upper()}", text="hi"),
        ],
    )
    deliver(store, sink)
    sink.accept_recipient(ASCII)
    ingest(store, [event(EventKind.DELIVERED, 1), event(EventKind.COMPLAINED, 2)])
    SuppressionList(store).add(ADDRESS, Reason.BOUNCE, diagnostic=f"550 {ASCII}", tenant="shop-a")
    store.put("quarantine/broken.json", f"{{not json: {ADDRESS}".encode())
    store.put("returned/bounce-1", returned_message())


def pending_mail(store: Store, fallback: Store) -> None:
    """Queued, scheduled (with an idempotency key naming it) and fallback batches."""
    queue(
        store,
        [
            Message(to=(ADDRESS,), subject="Pending for Ana", text="pending secret"),
            Message(to=("dave@example.com", "ANA@BÜCHER.EXAMPLE"), subject="Both", text="x"),
            Message(to=("erin@example.com",), subject="Erin only", text="x"),
        ],
    )
    later = datetime.now(UTC) + timedelta(days=3)
    with mailspool.request(store=store, settings=Settings.load(store="memory:unused")):
        mailspool.send_mail(ADDRESS, "Later", "x", key=f"welcome {ASCII}", send_at=later)
    queue(fallback, [Message(to=("frank@example.com", ADDRESS), subject="Fell back", text="x")])


def test_erase_leaves_no_trace_but_the_keyed_hash(
    stores: tuple[Store, Store], smtp_server: SMTPSink
) -> None:
    store, fallback = stores
    finished_mail(store, smtp_server)
    pending_mail(store, fallback)
    assert SuppressionList(store).is_suppressed(ASCII)
    assert mentions(stores)
    assert any(layout.is_partial_failure(k) for k in store.keys(layout.FAILED))

    report = erase_address(" ana@BÜCHER.example ", store, fallback=fallback)

    assert report.complete
    assert report.suppressed
    assert report.cancelled == 2  # the queued and the scheduled e-mail to it alone
    assert mentions(stores) == []
    assert store.exists(f"suppression/keyed/{report.keyed_hash}.json")
    assert store.exists(f"suppression/keyed/tenant/shop-a/{report.keyed_hash}.json")
    assert list(store.keys("suppression/tenant/")) == []
    kept = SuppressionList(store, cache_ttl=0)
    assert kept.remove(ASCII)  # the account's keyed entry: the tenant's stays
    assert kept.is_suppressed(ASCII, "shop-a")
    assert not kept.is_suppressed(ASCII, "shop-b")
    assert not kept.is_suppressed(ASCII)
    assert kept.remove(ASCII, "shop-a")
    assert not kept.is_suppressed(ASCII, "shop-a")
    record = orjson.loads(store.get(report.record_key))
    assert record["keyedHash"] == report.keyed_hash
    assert record["complete"]
    assert record["counts"]["done/"] >= 1
    assert record["counts"]["failed/"] >= 1
    assert list(store.keys(SCHEDULED)) == []  # its one e-mail was to the address
    assert [k for k in store.keys(layout.FAILED) if layout.is_partial_failure(k)] == []


def test_after_erase_mail_to_it_is_refused_and_others_still_get_theirs(
    stores: tuple[Store, Store], smtp_server: SMTPSink
) -> None:
    store, fallback = stores
    finished_mail(store, smtp_server)
    pending_mail(store, fallback)
    erase_address(ADDRESS, store, fallback=fallback)
    before = len(smtp_server.envelopes)
    queue(store, [Message(to=("ANA@XN--BCHER-KVA.EXAMPLE",), subject="again", text="x")])

    deliver(store, smtp_server)

    received = [r for e in smtp_server.envelopes[before:] for r in e.rcpt_tos]
    assert sorted(received) == ["dave@example.com", "erin@example.com"]
    reasons = [item.record.reason for item in admin.list_failed(store)]
    assert any("suppressed (" in r and "erased address" in r for r in reasons)


def test_an_e_mail_to_others_too_keeps_its_content_for_them(
    stores: tuple[Store, Store], smtp_server: SMTPSink
) -> None:
    store, _ = stores
    finished_mail(store, smtp_server)
    erase_address(ADDRESS, store)
    emails = [
        email for key in store.keys(layout.DONE) for email in orjson.loads(store.get(key))["emails"]
    ]
    subjects = sorted(email["subject"] for email in emails)
    assert subjects == ["About [erased]", "Team", "[erased]"]
    team = next(email for email in emails if email["subject"] == "Team")
    assert team["to"] == ["bob@example.com"]
    assert "[erased]" in team["message"]
    assert "secret for Ana" not in str(emails)


def test_erase_again_finds_nothing_and_keeps_the_suppression(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    SuppressionList(store).add(ADDRESS)
    first = erase_address(ADDRESS, store)
    second = erase_address(ADDRESS, store)
    assert first.keyed_hash == second.keyed_hash
    assert second.suppressed
    assert (second.redacted, second.removed, second.cancelled) == ([], [], 0)
    assert SuppressionList(store).is_suppressed("ana@xn--BCHER-kva.example")
    assert list(SuppressionList(store).entries()) == []  # no address is listed
    assert SuppressionList(store).remove(ADDRESS)  # an operator may still lift it
    assert not SuppressionList(store, cache_ttl=0).is_suppressed(ADDRESS)


def test_an_attachment_only_erased_e_mails_had_is_deleted(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    own, shared = Attachment("cv.pdf", b"A" * 9000), Attachment("terms.pdf", b"B" * 9000)
    queue(
        store,
        [
            Message(to=(ASCII,), subject="s", text="x", attachments=(own, shared)),
            Message(to=("bob@example.com",), subject="t", text="x", attachments=(shared,)),
        ],
    )
    assert len(list(store.keys(layout.BLOBS))) == 2
    report = erase_address(ASCII, store)
    assert [key.removeprefix(layout.BLOBS) for key in report.blobs] == [
        hashlib.sha256(own.content).hexdigest()
    ]
    assert list(store.keys(layout.BLOBS)) == [
        layout.blob_key(hashlib.sha256(shared.content).hexdigest())
    ]


@pytest.mark.parametrize("damaged", [b"\xff not json", b"[1, 2]", b'{"keyed": 1}'])
def test_an_unreadable_keyed_entry_counts_as_suppressed(tmp_path: Path, damaged: bytes) -> None:
    store = FileStore(tmp_path / "spool")
    SuppressionList(store).add(ASCII)
    report = erase_address(ASCII, store)
    store.put(f"suppression/keyed/{report.keyed_hash}.json", damaged)
    entry = SuppressionList(store).get(ADDRESS)
    assert entry is not None
    assert "unreadable entry" in entry.diagnostic


def test_a_damaged_erasure_key_is_named_and_stops_the_screen(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    SuppressionList(store).add(ASCII)
    erase_address(ASCII, store)
    store.put("erasures/key", b"short")
    with pytest.raises(StoreError, match="erasures/key: 5 bytes"):
        erase_address(ASCII, store)
    with pytest.raises(StoreError, match="erasures/key"):  # retried later, never sent
        SuppressionList(store).is_suppressed("someone@example.com")


def test_an_object_over_the_read_limit_is_reported_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "spool")
    store.put("done/big.json", b"x" * 200 + ASCII.encode())
    monkeypatch.setattr("mailspool.ops.erase.READ_LIMIT", 100)
    report = erase_address(ASCII, store)
    assert report.too_large == ["done/big.json"]
    assert not report.complete


def test_an_unparsable_record_is_scrubbed_and_reported(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    store.put("paused/odd.json", f"\x00garbage {ASCII} garbage".encode())
    store.append("ledger/x", f"[not json {ASCII}]".encode())
    report = erase_address(ASCII, store)
    assert sorted(report.unparsed) == ["ledger/x", "paused/odd.json"]
    assert ASCII.encode() not in store.get("paused/odd.json")
    assert store.read_log("ledger/x") == [b"[not json [erased]]"]


def test_a_batch_being_delivered_is_left_and_reported(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    [key] = queue(store, [Message(to=(ASCII,), subject="s", text="x")])
    lease = store.claim(layout.batch_id_from_key(key), "a worker", 60)
    assert lease is not None
    report = erase_address(ASCII, store)
    assert report.skipped == [key]
    assert not report.complete
    store.release(lease)
    assert erase_address(ASCII, store).complete
    assert list(store.keys(layout.QUEUE)) == []


def test_a_started_batch_keeps_its_ledger_until_it_is_finished(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    [key] = queue(store, [Message(to=(ASCII, "bob@example.com"), subject="s", text="x")])
    ledger = layout.ledger_key(layout.batch_id_from_key(key))
    line = encode_entries([LedgerEntry.sent(0, "<1@example.com>", 1, refused={ASCII: "550"})])
    store.append(ledger, line)  # a worker started on it, then stopped
    report = erase_address(ASCII, store)
    assert report.skipped == [key, ledger]
    assert store.read_log(ledger) == [line]


def test_the_command_erases_the_fallback_store_too_and_prints_the_audit_record(
    tmp_path: Path,
) -> None:
    url = f"file://{tmp_path / 'spool'}"
    fallback = FileStore.from_url(fallback_url_for(url, Settings.load().fallback_store))
    queue(fallback, [Message(to=(ADDRESS,), subject="fell back", text="x")])
    runner = CliRunner()
    result = runner.invoke(cli, ["erase", "--json", "--store", url, ADDRESS])
    assert result.exit_code == 0, result.output
    printed: dict[str, Any] = orjson.loads(result.stdout)
    assert printed["record"].startswith("erasures/")
    assert printed["cancelledEmails"] == 1
    assert "ana" not in result.stdout.lower()
    assert list(fallback.keys(layout.QUEUE)) == []
    refused = runner.invoke(cli, ["erase", "--store", url, "not an address"])
    assert refused.exit_code == 1
    assert "address" in refused.output


def test_the_public_function_uses_the_settings_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{tmp_path / 'spool'}")
    queue(FileStore(tmp_path / "spool"), [Message(to=(ASCII,), subject="s", text="x")])
    report = mailspool.erase(ASCII)
    assert report.cancelled == 1
    assert report.record_key.startswith("erasures/")


def test_on_an_encrypted_store_nothing_the_keys_open_names_it(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    """With MAILSPOOL_ENCRYPTION_KEY every file is sealed, so a byte search proves
    nothing: each object and log record is opened with the store's own key, and none
    names the address after erase; what erase rewrote is sealed again, and the worker
    still reads it."""
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    raw = FileStore(tmp_path / "spool")
    store = sealed(raw, (key,))
    fallback = sealed(FileStore(tmp_path / "fallback"), (key,))
    finished_mail(store, smtp_server)
    pending_mail(store, fallback)

    def opened_mentions() -> list[str]:
        found = []
        for one in (store, fallback):
            for name, data in every_object(as_stored(one)):
                if name.startswith(".") or "/." in name:  # the backend's own lease files
                    continue
                plain, _ = open_stored(one, name, data)
                text = name.encode() + b"\n" + plain
                if any(f in text.lower() for f in FORMS) or any(f in text for f in EXACT):
                    found.append(name)
        return found

    assert opened_mentions()
    report = erase_address(ASCII, store, fallback=fallback)

    assert report.complete
    assert report.unparsed == ["quarantine/broken.json"]  # not JSON: scrubbed as bytes
    assert opened_mentions() == []
    assert mentions((raw,)) == []
    assert all(
        data.startswith(b'{"mailspool_encrypted"')
        for _, data in every_object(raw)
        if _.startswith(("done/", "failed/"))
    )
    deliver(store, smtp_server)  # the redacted queue still opens and goes
    assert {r for e in smtp_server.envelopes for r in e.rcpt_tos} >= {"dave@example.com"}
