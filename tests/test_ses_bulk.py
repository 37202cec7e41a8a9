"""SES ``SendBulkEmail``: e-mails of a batch that share their content go 50 to a call.

The worker and the SES transport run against moto in server mode over HTTP; moto lacks
``SendBulkEmail``, so the server runs our handler (``tests/fixtures/moto_ses_bulk.py``),
which sends each entry through moto's own SES backend. Calls are counted with botocore's
``before-send`` event on the transport's client; what each destination got is read from
moto's records (``/moto-api/data.json``), the bytes SES built for that destination.
"""

from __future__ import annotations

import collections
import gzip
import json
import math
from collections.abc import Hashable, Iterator, Sequence
from contextlib import closing
from email import message_from_string, policy
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest
from prometheus_client import CollectorRegistry

import mailspool
from mailspool.config import Settings
from mailspool.delivery.bulk import call_size
from mailspool.delivery.ratelimit import RateLimiter
from mailspool.delivery.steps import SuppressionScreen, ThrottleCount, UnsubscribeHeaders
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import PermanentError, SendingPaused, TransientError
from mailspool.feedback.suppression import Reason, SuppressionList, shared_suppressions
from mailspool.feedback.unsubscribe import UnsubscribeLinks
from mailspool.message import Message
from mailspool.ops import admin
from mailspool.policy.allowed_senders import AllowedSenders
from mailspool.policy.guards import Guards
from mailspool.spool import batch, layout
from mailspool.spool.ledger import read_entries
from mailspool.spool.records import LedgerState, Timing
from mailspool.stores.memory import MemoryStore
from mailspool.transports.base import BulkEntry, BulkResult, Receipt, Transport
from mailspool.transports.ses import SESTransport
from mailspool.transports.ses_bulk import bulk_key, entry_results
from mailspool.web.metrics import SendMetrics
from tests.fixtures.moto_server import MotoServer

SENDER = "News <news@example.com>"
LINKS = UnsubscribeLinks("https://news.example.com/unsubscribe", b"0123456789abcdef-secret")
FAST = WorkerOptions(concurrency=4, retry_base=0.001, retry_cap=0.01, default_sender=SENDER)


class Calls(collections.Counter[str]):
    """SES operations by name, and each SendBulkEmail request as it went over the wire."""

    def __init__(self, transport: SESTransport) -> None:
        super().__init__()
        self.bulk: list[dict[str, Any]] = []
        transport._client.meta.events.register("before-send.sesv2", self._sent)

    def _sent(self, event_name: str, request: Any, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self[operation] += 1
        if operation == "SendBulkEmail":
            self.bulk.append(json.loads(request.body))


class CountingLimiter(RateLimiter):
    """The worker's rate limiter (no rate), counting the units taken from it."""

    def __init__(self) -> None:
        super().__init__(None)
        self.units = 0

    def acquire(self, units: int = 1) -> bool:
        self.units += units
        return super().acquire(units)


@pytest.fixture
def ses(aws: MotoServer) -> Iterator[SESTransport]:
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    with closing(SESTransport(region="us-east-1")) as transport:
        yield transport


def queue(store: MemoryStore, messages: Sequence[Message]) -> list[str]:
    """The messages written by one request scope (those sharing a sender: one batch)."""
    with mailspool.request(store=store, settings=Settings.load(store="memory:unused")) as scope:
        for message in messages:
            mailspool.send_message(message, priority=False)
    return list(scope.keys)


def post(count: int, *, subject: str = "New post", start: int = 0) -> list[Message]:
    """One post to ``count`` followers: the same content, one recipient each."""
    return [
        Message(
            to=(f"Reader {i} <reader{i}@example.org>",),
            subject=subject,
            text="A new post is up.",
            html="<p>A new post is up.</p>",
            sender=SENDER,
        )
        for i in range(start, start + count)
    ]


def deliver(
    store: MemoryStore,
    transport: Any,
    keys: list[str],
    options: WorkerOptions = FAST,
    **worker: Any,
) -> Worker:
    delivering = Worker(store, transport, options=options, **worker)
    try:
        for key in keys:
            delivering.deliver(key)
    finally:
        delivering.close()
    return delivering


def arrived(moto: MotoServer) -> dict[str, EmailMessage]:
    """What each To address got from a bulk call, as SES built it (moto keeps the
    bytes of raw records, which those are)."""
    got: dict[str, EmailMessage] = {}
    for record in moto.ses_messages():
        if "raw_data" not in record:
            continue
        parsed = message_from_string(record["raw_data"], policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        for _, address in getaddresses([str(parsed["To"])]):
            assert address not in got, f"{address} got the post twice"
            got[address] = parsed
    return got


def ledger_states(store: MemoryStore, key: str) -> collections.Counter[LedgerState]:
    entries = read_entries(store, layout.queued_batch_id(key)).values()
    return collections.Counter(entry.state for entry in entries)


# -- the worker -------------------------------------------------------------------------------


def test_a_post_to_120_followers_goes_out_in_3_bulk_calls_each_with_its_own_headers(
    ses: SESTransport, aws: MotoServer
) -> None:
    store, calls, limiter = MemoryStore(), Calls(ses), CountingLimiter()
    [key] = queue(store, post(120))
    steps = [SuppressionScreen(shared_suppressions(store)), UnsubscribeHeaders(LINKS)]
    worker = Worker(store, ses, options=FAST, steps=steps)
    worker.limiter = limiter
    try:
        report = worker.deliver(key)
    finally:
        worker.close()

    assert report.sent == 120
    assert calls == {"SendBulkEmail": math.ceil(120 / 50)}
    assert sorted(len(request["BulkEmailEntries"]) for request in calls.bulk) == [20, 50, 50]
    assert limiter.units == 120  # a call of N destinations takes N from the rate limit
    got = arrived(aws)
    assert set(got) == {f"reader{i}@example.org" for i in range(120)}
    for address, email in got.items():
        assert email["Subject"] == "New post"
        assert email["From"] == SENDER
        token = str(email["List-Unsubscribe"]).strip("<>").rpartition("token=")[2]
        assert LINKS.verify(token) == address  # its own one-click link
        assert email.get_body(("plain",)).get_content().strip() == "A new post is up."  # type: ignore[union-attr]
    ids = {record["id"] for record in aws.ses_messages()}
    entries = read_entries(store, layout.queued_batch_id(key))
    assert {entry.message_id for entry in entries.values()} == ids  # SES's id for each
    batch_id = layout.queued_batch_id(key)
    tags = [
        {tag["Name"]: tag["Value"] for tag in entry["ReplacementTags"]}
        for request in calls.bulk
        for entry in request["BulkEmailEntries"]
    ]
    assert sorted(int(t["mailspool-index"]) for t in tags) == list(range(120))
    assert {t["mailspool-batch"] for t in tags} == {batch_id}


def test_with_a_rate_limit_a_call_holds_what_the_rate_sends_in_the_deadline_margin(
    ses: SESTransport, aws: MotoServer
) -> None:
    """200/s, 4 threads, a margin of 0.5 s: 4 calls in flight hold at most 100 e-mails."""
    store, calls = MemoryStore(), Calls(ses)
    [key] = queue(store, post(120))
    options = WorkerOptions(concurrency=4, deadline_margin=0.5, default_sender=SENDER)
    worker = Worker(store, ses, options=options, max_rate=200)
    try:
        assert worker.deliver(key).sent == 120
    finally:
        worker.close()
    assert calls == {"SendBulkEmail": 5}
    assert {len(request["BulkEmailEntries"]) for request in calls.bulk} == {25, 20}


@pytest.mark.parametrize(
    ("rate", "threads", "size"), [(None, 32, 50), (14, 32, 2), (14, 1, 50), (1, 32, 1)]
)
def test_the_call_size_follows_the_rate_the_threads_and_the_margin(
    rate: float | None, threads: int, size: int
) -> None:
    assert call_size(50, rate, threads, 5.0) == size
    assert call_size(1, rate, threads, 5.0) == 1


def test_emails_that_share_no_content_still_go_one_by_one_through_send_email(
    ses: SESTransport, aws: MotoServer
) -> None:
    store, calls = MemoryStore(), Calls(ses)
    shared = post(3)
    alone = [*post(1, subject="Your invoice", start=3), *post(1, subject="{{name}}", start=4)]
    [key] = queue(store, [*shared, *alone])
    deliver(store, ses, [key])

    assert calls == {"SendBulkEmail": 1, "SendEmail": 2}
    assert len(calls.bulk[0]["BulkEmailEntries"]) == 3
    assert ledger_states(store, key) == {LedgerState.SENT: 5}
    alone_subjects = {r["subject"] for r in aws.ses_messages() if "subject" in r}
    assert alone_subjects == {"Your invoice", "{{name}}"}  # simple content, SendEmail


def test_attachments_shared_by_every_email_go_once_in_the_bulk_call(
    ses: SESTransport, aws: MotoServer
) -> None:
    store, calls = MemoryStore(), Calls(ses)
    invoice = ("terms.pdf", b"%PDF-1.4 " * 600, "application/pdf")
    messages = [Message.build(**_fields(m), attachments=[invoice]) for m in post(4)]
    [key] = queue(store, messages)
    deliver(store, ses, [key])

    assert calls == {"SendBulkEmail": 1}
    [attachment] = calls.bulk[0]["DefaultContent"]["Template"]["Attachments"]
    assert attachment["FileName"] == "terms.pdf"
    for email in arrived(aws).values():
        [part] = list(email.iter_attachments())
        assert part.get_payload(decode=True) == invoice[1]


def test_an_unverified_sender_fails_each_entry_for_good_with_its_failed_record(
    aws: MotoServer,
) -> None:
    """Nothing is verified in this moto: SES rejects every entry of the call."""
    store = MemoryStore()
    with closing(SESTransport(region="us-east-1")) as ses:
        calls = Calls(ses)
        [key] = queue(store, post(3))
        deliver(store, ses, [key])

    assert calls == {"SendBulkEmail": 1}
    assert ledger_states(store, key) == {LedgerState.FAILED: 3}
    failed = admin.list_failed(store)
    assert len(failed) == 3
    for item in failed:
        assert item.record.reason.startswith("SES bulk MESSAGE_REJECTED: ")
        assert "news@example.com" in item.record.reason
        assert not item.record.retryable
    assert aws.ses_messages() == []


def test_a_suppressed_follower_is_left_out_of_the_call_and_failed(
    ses: SESTransport, aws: MotoServer
) -> None:
    store, calls = MemoryStore(), Calls(ses)
    SuppressionList(store).add("reader1@example.org", Reason.BOUNCE)
    [key] = queue(store, post(4))
    deliver(store, ses, [key], steps=[SuppressionScreen(SuppressionList(store))])

    assert calls == {"SendBulkEmail": 1}
    assert len(calls.bulk[0]["BulkEmailEntries"]) == 3
    assert "reader1@example.org" not in arrived(aws)
    assert ledger_states(store, key) == {LedgerState.SENT: 3, LedgerState.FAILED: 1}
    [failed] = admin.list_failed(store)
    assert "suppressed (bounce" in failed.record.reason


def test_an_expired_batch_and_a_sender_not_allowed_fail_unsent(
    ses: SESTransport, aws: MotoServer
) -> None:
    store, calls = MemoryStore(), Calls(ses)
    batch_id = layout.new_batch_id()
    expired = Timing(expires_at="2020-01-01T00:00:00Z")
    data = batch.encode(post(3), batch_id=batch_id, default_sender=SENDER, timing=expired)
    store.put(layout.queue_key(batch_id), data)
    [other] = queue(store, post(3))
    only_shop = WorkerOptions(
        default_sender=SENDER, guards=Guards(senders=AllowedSenders.parse("@shop.example.com"))
    )
    deliver(store, ses, [layout.queue_key(batch_id)])
    deliver(store, ses, [other], only_shop)

    assert calls == {}
    assert aws.ses_messages() == []
    reasons = sorted(item.record.reason for item in admin.list_failed(store))
    assert len(reasons) == 6
    assert all(r.startswith("expired at 2020-01-01") for r in reasons[3:])
    assert all("MAILSPOOL_ALLOWED_SENDERS" in r for r in reasons[:3])


class ThrottleOne(Transport):
    """The real SES transport, except that one address's entry is answered as SES
    answers an entry it throttles (``ACCOUNT_THROTTLED``) and is not sent. A stand-in for
    that one fault: moto has no per-entry throttling to produce it."""

    def __init__(self, inner: SESTransport, address: str) -> None:
        self.inner = inner
        self.url = inner.url
        self.max_bulk = inner.max_bulk
        self.address = address

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        return self.inner.send(message, message_id=message_id)

    def bulk_key(self, message: Message) -> Hashable | None:
        return self.inner.bulk_key(message)

    def send_bulk(self, entries: Sequence[BulkEntry]) -> list[BulkResult]:
        kept = [e for e in entries if self.address not in e.message.to[0]]
        results = iter(self.inner.send_bulk(kept))
        throttled = {"Status": "ACCOUNT_THROTTLED", "Error": "Maximum sending rate exceeded."}
        [refusal] = entry_results({"BulkEmailEntryResults": [throttled]}, 1)
        return [refusal if e not in kept else next(results) for e in entries]


def test_a_throttled_entry_is_retried_later_alone_through_send_email(
    ses: SESTransport, aws: MotoServer
) -> None:
    store, calls = MemoryStore(), Calls(ses)
    [key] = queue(store, post(5))
    deliver(store, ThrottleOne(ses, "reader2@example.org"), [key])

    assert calls == {"SendBulkEmail": 1, "SendEmail": 1}
    assert collections.Counter(parse_to(r) for r in aws.ses_messages()) == {
        f"reader{i}@example.org": 1 for i in range(5)
    }
    entries = read_entries(store, layout.queued_batch_id(key))
    assert {i: e.attempts for i, e in entries.items()} == {0: 1, 1: 1, 2: 2, 3: 1, 4: 1}


def test_the_handler_counts_a_throttled_entry_as_throttled(ses: SESTransport) -> None:
    store = MemoryStore()
    [key] = queue(store, post(4))
    counter = ThrottleCount()
    deliver(store, ThrottleOne(ses, "reader0@example.org"), [key], steps=[counter])
    assert counter.throttled == 1
    assert ledger_states(store, key) == {LedgerState.SENT: 4}


def test_worker_metrics_count_each_email_of_a_bulk_call_with_its_outcome(
    ses: SESTransport,
) -> None:
    registry = CollectorRegistry()
    measured = SendMetrics(registry)
    store = MemoryStore()
    [key] = queue(store, post(4))
    deliver(store, ThrottleOne(ses, "reader0@example.org"), [key], steps=[measured])
    sends = {
        outcome: registry.get_sample_value("mailspool_sends_total", {"outcome": outcome})
        for outcome in ("sent", "transient")
    }
    assert sends == {"sent": 4.0, "transient": 1.0}  # 3 in the call, 1 alone after it
    assert registry.get_sample_value("mailspool_send_seconds_count") == 2.0  # two calls


def parse_to(record: dict[str, Any]) -> str:
    """The To address of a moto record, raw (bulk) or simple (SendEmail)."""
    if "raw_data" not in record:
        return getaddresses(record["destinations"]["ToAddresses"])[0][1]
    parsed = message_from_string(record["raw_data"], policy=policy.default)
    return getaddresses([str(parsed["To"])])[0][1]


def _fields(message: Message) -> dict[str, Any]:
    return {
        "to": message.to,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "sender": message.sender,
    }


# -- the transport ----------------------------------------------------------------------------


def _bulk_statuses() -> list[str]:
    """``BulkEmailStatus`` as the installed botocore's SES v2 service model lists it."""
    model = Path(botocore.__file__).parent / "data/sesv2/2019-09-27/service-2.json.gz"
    shapes = json.loads(gzip.decompress(model.read_bytes()))["shapes"]
    return list(shapes["BulkEmailStatus"]["enum"])


PAUSED = {"ACCOUNT_SUSPENDED", "ACCOUNT_SENDING_PAUSED", "CONFIGURATION_SET_SENDING_PAUSED"}
TRANSIENT = {"ACCOUNT_THROTTLED", "ACCOUNT_DAILY_QUOTA_EXCEEDED", "TRANSIENT_FAILURE", "FAILED"}


@pytest.mark.parametrize("status", _bulk_statuses())
def test_every_bulk_status_of_the_api_maps_to_an_outcome(status: str) -> None:
    [result] = entry_results(
        {"BulkEmailEntryResults": [{"Status": status, "Error": "why", "MessageId": "m-1"}]}, 1
    )
    if status == "SUCCESS":
        assert result == Receipt(message_id="m-1")
    elif status in PAUSED:
        assert isinstance(result, SendingPaused)
    elif status in TRANSIENT:
        assert type(result) is TransientError
    else:
        assert isinstance(result, PermanentError)
        assert str(result) == f"SES bulk {status}: why"


def test_answers_that_are_missing_or_malformed_are_transient() -> None:
    answer = {"BulkEmailEntryResults": [{"Status": 7}, "junk", {"Status": "NEW"}]}
    results = entry_results(answer, 4)
    assert [type(r) for r in results] == [TransientError] * 4
    assert [type(r) for r in entry_results({"BulkEmailEntryResults": "x"}, 2)] == [
        TransientError
    ] * 2


def test_a_success_without_a_message_id_is_sent_not_sent_again() -> None:
    [result] = entry_results({"BulkEmailEntryResults": [{"Status": "SUCCESS"}]}, 1)
    assert result == Receipt(message_id="")


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "Hello {{name}}"},
        {"charset": "iso-8859-1"},
        {"to": ("jürgen@example.de",)},
        {"headers": tuple((f"X-Tag-{i}", "v") for i in range(16))},
        {"headers": (("X-Name", "Jürgen"),)},
        {"headers": (("X-Long", "x" * 996),)},
    ],
)
def test_emails_ses_cannot_build_from_a_template_have_no_bulk_key(change: dict[str, Any]) -> None:
    base = post(1)[0]
    assert bulk_key(base, None) is not None
    fields = {**_fields(base), "charset": base.charset, "headers": base.headers, **change}
    assert bulk_key(Message(**fields), None) is None


def test_a_sender_with_an_international_display_name_has_a_bulk_key() -> None:
    message = Message(**{**_fields(post(1)[0]), "sender": "Jürgen Groß <news@example.com>"})
    assert bulk_key(message, None) is not None
    refused = Message(**{**_fields(post(1)[0]), "sender": "jürgen@example.com"})
    assert bulk_key(refused, None) is None


def test_per_recipient_headers_do_not_change_the_key() -> None:
    one, other = post(2)
    tagged = Message(**{**_fields(other), "headers": (("List-Unsubscribe", "<https://x>"),)})
    assert bulk_key(one, None) == bulk_key(tagged, None)


def test_bulk_false_in_the_url_sends_one_by_one(aws: MotoServer) -> None:
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    store = MemoryStore()
    with closing(SESTransport.from_url("ses://us-east-1?bulk=false")) as ses:
        calls = Calls(ses)
        assert (ses.max_bulk, ses.bulk_key(post(1)[0])) == (1, None)
        [key] = queue(store, post(3))
        deliver(store, ses, [key])
    assert calls == {"SendEmail": 3}


def test_a_call_over_fifty_entries_is_refused_by_ses_as_a_whole(ses: SESTransport) -> None:
    entries = [BulkEntry(m) for m in post(51)]
    with pytest.raises(PermanentError, match="BadRequestException"):
        ses.send_bulk(entries)
