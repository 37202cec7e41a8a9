"""Limits on what the worker reads, and the allowed senders: each refusal names its
setting, fails only its own e-mail (or quarantines the file) and sends nothing."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import mailspool
from mailspool.config import Settings
from mailspool.delivery.inflight import BytesInFlight
from mailspool.delivery.worker import BatchReport, Worker, WorkerOptions
from mailspool.errors import ConfigurationError, PermanentError, SenderNotAllowed
from mailspool.ops.status import email_count
from mailspool.policy.allowed_senders import AllowedSenders
from mailspool.policy.guards import Guards
from mailspool.policy.limits import Limits
from mailspool.spool import layout
from mailspool.stores.base import Store
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from mailspool.transports.memory import MemoryTransport
from mailspool.transports.smtp import SMTPTransport
from tests.fixtures.smtp_server import running_smtp_server
from tests.test_security_attachments import failed_records

Email = dict[str, Any]
META = {"from": "Site <news@example.com>", "contentType": "text/html", "charset": "utf-8"}


def email(i: int = 0, **fields: Any) -> Email:
    return {
        "to": [f"u{i}@example.org"],
        "subject": f"s{i}",
        "message": "<p>x</p>",
        "attachments": [],
        **fields,
    }


def put(store: Store, emails: list[Email], meta: dict[str, Any] | None = None) -> str:
    document = {"version": 1, "meta": meta or META, "emails": emails}
    key = layout.queue_key(layout.new_batch_id())
    store.put(key, orjson.dumps(document))
    return key


def run(store: Store, key: str, guards: Guards) -> tuple[BatchReport, MemoryTransport]:
    transport = MemoryTransport()
    worker = Worker(store, transport, options=WorkerOptions(concurrency=2, guards=guards))
    try:
        return worker.deliver(key), transport
    finally:
        worker.close()


def inline(content: bytes) -> dict[str, str]:
    return {
        "filename": "a.bin",
        "contentType": "application/octet-stream",
        "content": base64.b64encode(content).decode(),
    }


# (limit, value, the e-mail that breaks it, meta or None)
CASES: list[tuple[str, int, Callable[[], Email], dict[str, Any] | None]] = [
    ("recipients", 2, lambda: email(to=["a@example.org", "b@example.org", "c@example.org"]), None),
    ("recipients", 2, lambda: email(to=["a@example.org, b@example.org, c@example.org"]), None),
    ("recipients", 2, lambda: email(), {**META, "cc": ["c@example.org"], "bcc": ["d@example.org"]}),
    ("headers", 1, lambda: email(), {**META, "headers": {"X-A": "1", "X-B": "2"}}),
    ("header_length", 10, lambda: email(), {**META, "headers": {"X-Long": "y" * 10}}),
    ("subject_length", 5, lambda: email(subject="123456"), None),
    ("attachments", 1, lambda: email(attachments=[inline(b"a"), inline(b"b")]), None),
    ("attachment_bytes", 3, lambda: email(attachments=[inline(b"abcd")]), None),
    ("message_bytes", 100, lambda: email(message="x" * 100), None),
]


@pytest.mark.parametrize(("limit", "value", "make", "meta"), CASES)
def test_an_e_mail_over_a_limit_fails_naming_it_and_the_rest_is_sent(
    limit: str, value: int, make: Callable[[], Email], meta: dict[str, Any] | None
) -> None:
    store = MemoryStore()
    key = put(store, [make(), email(1)], meta)
    limits = Limits(**{limit: value})
    report, transport = run(store, key, Guards(limits=limits))
    setting = limits.setting(limit)
    assert setting.split("=")[1] == str(value)
    [failed] = [item for item in failed_records(store) if item.index == 0]
    assert setting in failed.reason
    assert not failed.retryable
    if meta is None:  # the other e-mail shares nothing that breaks the limit: it goes out
        assert [m.envelope_recipients for m in transport.outbox] == [("u1@example.org",)]
        assert (report.sent, report.failed) == (1, 1)


def put_blob(store: Store, content: bytes, *, declared: int) -> dict[str, Any]:
    """A blob in the store, and a reference to it declaring ``declared`` bytes."""
    digest = hashlib.sha256(content).hexdigest()
    store.put(layout.blob_key(digest), content)
    kind = "application/octet-stream"
    return {"filename": "b.bin", "contentType": kind, "sha256": digest, "size": declared}


def test_a_blob_larger_than_the_limit_is_not_read() -> None:
    store = MemoryStore()
    blob = put_blob(store, b"z" * 100, declared=1)
    key = put(store, [email(attachments=[blob])])
    _, transport = run(store, key, Guards(limits=Limits(attachment_bytes=99)))
    assert transport.outbox == []
    [failed] = failed_records(store)
    assert "MAILSPOOL_MAX_ATTACHMENT_BYTES=99" in failed.reason


@pytest.mark.parametrize("make_store", [MemoryStore, "file"])
def test_a_batch_file_over_the_size_limit_is_quarantined_unread(
    make_store: Callable[[], Store] | str, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "spool") if make_store == "file" else MemoryStore()
    key = put(store, [email(i) for i in range(20)])
    size = len(store.get(key))
    report, transport = run(store, key, Guards(limits=Limits(batch_bytes=size - 1)))
    assert report.status == "quarantined"
    assert f"MAILSPOOL_MAX_BATCH_BYTES={size - 1}" in str(report.error)
    assert transport.outbox == []
    assert store.get(layout.quarantine_key(key)) == store.get_at_most(
        layout.quarantine_key(key), size
    )
    error = orjson.loads(store.get(layout.quarantine_error_key(key)))
    assert f"{size} bytes" in error["reason"]


def test_a_batch_with_too_many_e_mails_is_quarantined() -> None:
    store = MemoryStore()
    key = put(store, [email(i) for i in range(3)])
    report, transport = run(store, key, Guards(limits=Limits(emails_per_batch=2)))
    assert report.status == "quarantined"
    assert "MAILSPOOL_MAX_EMAILS_PER_BATCH=2" in str(report.error)
    assert transport.outbox == []


def test_a_message_larger_than_the_smtp_servers_advertised_size_is_not_sent() -> None:
    message = mailspool.Message.build(to="a@example.org", subject="big", text="x" * 5000)
    with running_smtp_server(size_limit=2000) as server:
        transport = SMTPTransport.from_url(server.url)
        with pytest.raises(PermanentError, match="more than the SIZE 2000"):
            transport.send(message)
        transport.send(mailspool.Message.build(to="a@example.org", subject="small", text="x"))
        transport.close()
        assert [e.parsed()["Subject"] for e in server.envelopes] == ["small"]


# -- allowed senders -------------------------------------------------------------------------


ALLOWED = AllowedSenders.parse("@example.com, Boss@Other.org, @bücher.example")


@pytest.mark.parametrize(
    ("sender", "allowed"),
    [
        ("Site <news@example.com>", True),
        ("boss@other.org", True),
        ("BOSS@OTHER.ORG", True),
        ("eve@other.org", False),
        ("news@mail.example.com", False),
        ("news@example.com.evil.org", False),
        ("not an address", False),
        # one mailbox in other spellings: quoted local part, fullwidth letters, IDNA
        ('"boss"@other.org', True),
        ("boss@\uff4f\uff54\uff48\uff45\uff52.org", True),  # fullwidth "other"
        ("shop@xn--bcher-kva.example", True),
        ("shop@BÜCHER.example", True),
    ],
)
def test_allowed_senders_match_addresses_and_whole_domains(sender: str, allowed: bool) -> None:
    assert ALLOWED.allows(sender) is allowed


def test_a_bad_allowed_senders_item_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="MAILSPOOL_ALLOWED_SENDERS"):
        AllowedSenders.parse("@example.com, nobody")


def test_the_worker_sends_nothing_from_a_sender_not_allowed() -> None:
    store = MemoryStore()
    guards = Guards(senders=ALLOWED)
    keys = [
        put(store, [email(0)], {**META, "from": "Eve <eve@evil.org>"}),
        put(store, [email(1)], {**META, "headers": {"Sender": "eve@evil.org"}}),
        put(store, [email(2)], {**META, "replyTo": ["anyone@evil.org"]}),
    ]
    outcomes = [run(store, key, guards) for key in keys]
    assert [len(transport.outbox) for _, transport in outcomes] == [0, 0, 1]
    reasons = sorted(item.reason for item in failed_records(store))
    assert len(reasons) == 2
    assert all("not in MAILSPOOL_ALLOWED_SENDERS" in r for r in reasons)
    assert not any(item.retryable for item in failed_records(store))


def test_the_worker_checks_the_default_sender_too() -> None:
    store = MemoryStore()
    key = put(store, [email(0)], {**META, "from": ""})
    report, transport = run(store, key, Guards(senders=ALLOWED))
    assert (report.failed, transport.outbox) == (1, [])


def test_the_priority_path_sends_nothing_from_a_sender_not_allowed(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_ALLOWED_SENDERS", "@example.com")
    with running_smtp_server() as server:
        settings = Settings.load(store=f"file://{spool}", priority_transport=server.url)
        with mailspool.request(settings=settings):
            with pytest.raises(SenderNotAllowed, match=r"eve@evil\.org"):
                mailspool.send_mail(
                    "a@example.org", "hi", "x", {"From": "eve@evil.org"}, priority=True
                )
            mailspool.send_mail(
                "a@example.org", "hi", "x", {"From": "ok@example.com"}, priority=True
            )
        assert [e.mail_from for e in server.envelopes] == ["ok@example.com"]


def test_blobs_that_add_up_past_the_message_limit_stop_being_read() -> None:
    store = MemoryStore()
    references = [put_blob(store, bytes([n]) * 100, declared=100) for n in range(5)]
    key = put(store, [email(attachments=references)])
    _, transport = run(store, key, Guards(limits=Limits(message_bytes=250)))
    assert transport.outbox == []
    [failed] = failed_records(store)
    assert "add up to more than MAILSPOOL_MAX_MESSAGE_BYTES=250" in failed.reason


def test_a_blob_larger_than_its_declared_size_is_not_read_past_it() -> None:
    store = MemoryStore()
    blob = put_blob(store, b"q" * 100, declared=10)
    key = put(store, [email(attachments=[blob])])
    _, transport = run(store, key, Guards())
    assert transport.outbox == []
    [failed] = failed_records(store)
    assert "larger than their declared sizes" in failed.reason


def test_the_footprint_counts_bodies_inline_attachments_and_declared_blobs() -> None:
    limits = Limits(attachment_bytes=1000, message_bytes=5000)
    raw = email(
        message="x" * 50,
        attachments=[
            inline(b"y" * 300),
            {"filename": "b", "contentType": "a/b", "sha256": "0" * 64, "size": 200},
            {"filename": "c", "contentType": "a/b", "sha256": "1" * 64, "size": "lies"},
            "/uploads/d.pdf",
        ],
    )
    footprint = limits.footprint(raw)
    assert footprint.reads == 200 + 1000 + 1000
    assert footprint.total == 50 + 300 + footprint.reads


def test_bytes_in_flight_make_large_e_mails_take_turns() -> None:
    in_flight = BytesInFlight(10)
    stopping = threading.Event()
    assert in_flight.acquire(6, stopping) == 6
    assert in_flight.acquire(4, stopping) == 4  # fits beside the first
    waiting: list[int | None] = []
    second = threading.Thread(target=lambda: waiting.append(in_flight.acquire(6, stopping)))
    second.start()
    stopping.set()  # it could not fit: it gives up instead of reserving
    second.join()
    assert waiting == [None]
    in_flight.release(6)
    in_flight.release(4)
    assert in_flight.acquire(50, threading.Event()) == 10  # alone, a larger one still goes


def test_status_counts_a_quarantined_file_over_the_batch_limit_without_reading_it(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "spool")
    big = b'{"version": 1, "emails": [{}, {}, {}]' + b" " * Limits().batch_bytes + b"}"
    store.put("quarantine/huge.json", big)
    assert email_count(store, "quarantine/huge.json", default=1) == 1
    store.put("quarantine/small.json", big.replace(b" " * 1000, b""))  # a whole read: 3
    assert email_count(store, "quarantine/small.json", default=1) == 3
    # Refused by size, the large one counts as one held e-mail: it is never read.
    assert email_count(store, "quarantine/huge.json", default=1) == 1
