"""The Lambda handler against moto in server mode: S3 notifications really go to SQS,
the handler reads them as Lambda would hand them over, and SES (moto) records each send.

The context object is Lambda's context API (remaining time, request id), not a stub of
a server: ``Context`` counts down on ``time.monotonic()``.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_string, policy
from email.utils import parseaddr
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

import mailspool
from mailspool.aws import handler
from mailspool.aws.lambda_handler import BatchNotDelivered, handle
from mailspool.config import Settings
from mailspool.delivery.factory import delivery_url
from mailspool.message import Message
from mailspool.ops.status import collect_status
from mailspool.spool import batch, layout
from mailspool.stores.base import Store
from mailspool.stores.open_stores import shared_store
from mailspool.transports import open_transport
from mailspool.transports.base import Receipt, Transport
from mailspool.transports.open_transports import shared_transport
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.smtp_server import SMTPSink

BUCKET = "mailspool-aws"
PREFIX = "spool"
STORE_URL = f"s3://{BUCKET}/{PREFIX}"
INVOICE = ("invoice.pdf", b"%PDF-1.4 " * 1200, "application/pdf")  # 10.8 KB: a blob


class Context:
    """Lambda's context: the remaining time counts down from ``seconds``."""

    def __init__(self, seconds: float = 600.0, request_id: str = "request-1") -> None:
        self.aws_request_id = request_id
        self.end = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.end - time.monotonic()) * 1000), 0)


@dataclass
class Stack:
    """A bucket whose ``queue/*.json`` objects notify an SQS queue, and a verified sender."""

    moto: MotoServer
    s3: Any
    sqs: Any
    queue_url: str

    @property
    def store(self) -> Store:
        return shared_store(STORE_URL)

    def receive(self) -> list[dict[str, Any]]:
        """Up to 10 messages, as Lambda's SQS event source would pass them."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        return [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:mailspool",
            }
            for m in answer.get("Messages", [])
        ]

    def run_queue(self, context: Context | None = None, **handle_options: Any) -> list[str]:
        """Hand every queued notification to the handler, as the SQS event source does,
        until the queue is empty; delete what succeeded. The ids reported as failures."""
        failures: list[str] = []
        while records := self.receive():
            answer = handle({"Records": records}, context or Context(), **handle_options)
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            failures.extend(failed)
            for record in records:
                if record["messageId"] not in failed:
                    self.sqs.delete_message(
                        QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"]
                    )
                else:  # visible again now, as SQS does after the visibility timeout
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url,
                        ReceiptHandle=record["receiptHandle"],
                        VisibilityTimeout=0,
                    )
            if failed:
                break
        return failures

    def recipients(self) -> collections.Counter[str]:
        """How often each address received a message (To, Cc and Bcc), per SES (moto)."""
        counts: collections.Counter[str] = collections.Counter()
        for record in self.moto.ses_messages():
            destinations = record["destinations"]
            if isinstance(destinations, dict):
                destinations = [a for field in destinations.values() for a in field]
            counts.update({parseaddr(a)[1] for a in destinations})
        return counts


@pytest.fixture
def stack(aws: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Stack:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket=BUCKET)
    queue_url = sqs.create_queue(QueueName="mailspool")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn["Attributes"]["QueueArn"],
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": f"{PREFIX}/queue/"},
                                {"Name": "suffix", "Value": ".json"},
                            ]
                        }
                    },
                }
            ]
        },
    )
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    monkeypatch.setenv("MAILSPOOL_STORE", STORE_URL)
    monkeypatch.setenv("MAILSPOOL_TRANSPORT", "ses://us-east-1")
    monkeypatch.setenv("MAILSPOOL_SENDER", "Mailspool <mail@example.com>")
    monkeypatch.setenv("MAILSPOOL_MAX_RATE", "100000")  # moto's sandbox quota says 1/s
    stack = Stack(aws, s3, sqs, queue_url)
    stack.receive()  # S3's s3:TestEvent; the handler would ignore it anyway
    return stack


def hand_off(count: int, *, start: int = 0, **headers: str) -> list[str]:
    """One request scope writing ``count`` e-mails to the S3 store; the keys written."""
    with mailspool.request(settings=Settings.load(store=STORE_URL)) as scope:
        for i in range(start, start + count):
            mailspool.send_mail(f"user{i}@example.org", f"Note {i}", f"<p>{i}</p>", headers)
    return scope.keys


class CrashAfter(Transport):
    """The real transport, until ``sends`` e-mails have gone: then every send raises, as
    an invocation that dies does (a fault injected around the real SES transport)."""

    def __init__(self, inner: Transport, sends: int) -> None:
        self.inner, self.left, self.url = inner, sends, inner.url

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        self.left -= 1
        if self.left < 0:
            raise RuntimeError("the invocation died")
        return self.inner.send(message, message_id=message_id)


# -- the headline --------------------------------------------------------------------------


@pytest.mark.slow
def test_2000_emails_from_a_request_arrive_once_each_through_s3_sqs_and_the_handler(
    stack: Stack,
) -> None:
    settings = Settings.load(store=STORE_URL)
    blog = {
        "From": "Blog <blog@example.com>",
        "Cc": "editor@example.org",
        "Bcc": "archive@example.org",
    }
    shop = "From: Shop <shop@example.com>\r\nContent-Type: text/plain; charset=utf-8"
    with mailspool.request(settings=settings) as scope:
        for i in range(1000):
            mailspool.send_mail(f"Reader {i} <a{i}@example.org>", f"Post {i}", f"<p>{i}</p>", blog)
            attachments = [INVOICE] if i % 10 == 0 else None
            mailspool.send_mail(f"b{i}@example.org", f"Order {i}", f"order {i}", shop, attachments)
    assert len(scope.keys) == 2
    assert len(list(stack.store.keys(layout.BLOBS))) == 1  # one invoice, stored once

    assert stack.run_queue() == []

    recipients = stack.recipients()
    readers = {f"a{i}@example.org" for i in range(1000)} | {
        f"b{i}@example.org" for i in range(1000)
    }
    assert {a: n for a, n in recipients.items() if a in readers} == dict.fromkeys(readers, 1)
    assert (recipients["editor@example.org"], recipients["archive@example.org"]) == (1000, 1000)
    raw = [r for r in stack.moto.ses_messages() if "raw_data" in r]
    assert len(raw) == 100
    parsed = message_from_string(raw[0]["raw_data"], policy=policy.default)
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_payload(decode=True) == INVOICE[1]
    counts = collect_status(stack.store)
    assert (counts.sent, counts.pending, counts.failed, counts.quarantined) == (2000, 0, 0, 0)


def test_a_post_to_120_followers_goes_through_the_handler_in_3_bulk_calls(stack: Stack) -> None:
    """E-mails that share their content go 50 to a ``SendBulkEmail`` (moto lacks that
    API: the server runs ours, ``tests/fixtures/moto_ses_bulk.py``)."""
    calls: collections.Counter[str] = collections.Counter()

    def count(event_name: str, **_: Any) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    ses = shared_transport(delivery_url(Settings.load()))  # the one the handler uses
    ses._client.meta.events.register("before-send.sesv2", count)  # type: ignore[attr-defined]
    try:
        with mailspool.request(settings=Settings.load(store=STORE_URL)) as scope:
            for i in range(120):
                mailspool.send_mail(f"f{i}@example.org", "New post", "<p>It is up.</p>")
        assert len(scope.keys) == 1
        assert stack.run_queue() == []
    finally:
        ses._client.meta.events.unregister("before-send.sesv2", count)  # type: ignore[attr-defined]
    assert calls == {"SendBulkEmail": 3, "GetAccount": 1}  # the 24-hour quota, asked once
    assert stack.recipients() == collections.Counter(f"f{i}@example.org" for i in range(120))
    assert collect_status(stack.store).sent == 120


# -- duplicates and crashes ------------------------------------------------------------------


def test_the_same_event_twice_sends_nothing_twice(stack: Stack) -> None:
    hand_off(30)
    records = stack.receive()
    assert len(records) == 1
    event = {"Records": records}
    assert handler(event, Context()) == {"batchItemFailures": []}
    assert handler(event, Context(request_id="request-2")) == {"batchItemFailures": []}
    assert stack.recipients() == collections.Counter(f"user{i}@example.org" for i in range(30))


def test_a_retry_after_a_crash_half_way_sends_only_the_rest(stack: Stack) -> None:
    hand_off(60)
    real = shared_transport("ses://us-east-1")
    assert stack.run_queue(transport=CrashAfter(real, 25)) != []  # reported: SQS redelivers
    assert 25 <= sum(stack.recipients().values()) < 60
    assert stack.run_queue() == []
    assert stack.recipients() == collections.Counter(f"user{i}@example.org" for i in range(60))
    assert collect_status(stack.store).sent == 60


# -- the deadline -----------------------------------------------------------------------------


class SendsClock:
    """Lambda's context on a clock the test moves: each e-mail SES takes spends ``step``
    seconds of the invocation, however loaded the machine is (counted with botocore's
    ``after-call`` event on the transport's own client)."""

    def __init__(self, seconds: float, step: float) -> None:
        self.aws_request_id = "request-1"
        self.left = seconds
        self.step = step
        self._lock = threading.Lock()

    def spend(self, **_: Any) -> None:
        with self._lock:
            self.left -= self.step

    def get_remaining_time_in_millis(self) -> int:
        with self._lock:
            return max(int(self.left * 1000), 0)


def test_with_four_seconds_left_it_stops_in_time_and_the_continuation_delivers_the_rest(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """400 e-mails at 20 ms each of Lambda's time need 8 s: with 4 s left the handler
    stops at its margin (a quarter of the time left, 1 s), the sends in flight included,
    and hands the rest to a continuation batch. The time is the test's (``SendsClock``),
    so the figures hold on a loaded machine."""
    monkeypatch.setenv("MAILSPOOL_MAX_RATE", "100000")  # not SES's 14 a second: no waits
    [key] = hand_off(400)
    [record] = stack.receive()
    transport: Any = shared_transport(delivery_url(Settings.load()))  # the handler's own
    client = transport._client
    context = SendsClock(seconds=4.0, step=0.02)
    client.meta.events.register("after-call.sesv2.SendEmail", context.spend)
    try:
        answer = handler({"Records": [record]}, context)
    finally:
        client.meta.events.unregister("after-call.sesv2.SendEmail", context.spend)
    left = context.get_remaining_time_in_millis()
    assert left > 0, "the handler used more time than Lambda gave it"
    assert answer == {"batchItemFailures": []}
    sent_first = sum(stack.recipients().values())
    assert 0 < sent_first < 400
    [continuation] = list(stack.store.keys(layout.QUEUE))
    assert continuation != key
    assert stack.store.exists(layout.done_key(layout.batch_id_from_key(key)))

    assert stack.run_queue() == []  # the continuation's own S3 event
    assert stack.recipients() == collections.Counter(f"user{i}@example.org" for i in range(400))
    assert list(stack.store.keys(layout.QUEUE)) == []


# -- event shapes ---------------------------------------------------------------------------


def _batch_at(store: Store, key: str, recipient: str) -> None:
    message = Message.build(to=recipient, subject="s", text="t", sender="a@example.com")
    data = batch.encode(
        [message], batch_id=layout.batch_id_from_key(key), default_sender="x@example.com"
    )
    store.put(key, data)


def _s3_event(key: str, bucket: str = BUCKET) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/")}},
            }
        ]
    }


def _sns(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "TopicArn": "arn:aws:sns:us-east-1:1:t",
        "Message": json.dumps(message),
    }


SHAPES = {
    "direct S3": lambda key: _s3_event(key),
    "SNS": lambda key: {"Records": [{"EventSource": "aws:sns", "Sns": _sns(_s3_event(key))}]},
    "SQS": lambda key: {
        "Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": json.dumps(_s3_event(key))}
        ]
    },
    "SQS-wrapped SNS": lambda key: {
        "Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": json.dumps(_sns(_s3_event(key)))}
        ]
    },
    "EventBridge": lambda key: {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": BUCKET}, "object": {"key": key}},
    },
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_event_shape_reaches_the_object_even_with_spaces_and_unicode(
    stack: Stack, shape: str
) -> None:
    names = ["queue/ä b.json", "queue/plain+plus.json", "queue/x.json"]
    for number, name in enumerate(names):
        _batch_at(stack.store, name, f"r{number}@example.org")
    for name in names:
        answer = handler(SHAPES[shape](f"{PREFIX}/{name}"), Context())
        if "batchItemFailures" in answer:
            assert answer == {"batchItemFailures": []}
        else:
            assert answer["sent"] == 1
    assert stack.recipients() == collections.Counter(f"r{n}@example.org" for n in range(3))
    assert list(stack.store.keys(layout.QUEUE)) == []
    assert stack.store.exists("done/ä b.json")


def test_objects_outside_the_queue_or_the_bucket_are_ignored(stack: Stack) -> None:
    _batch_at(stack.store, "queue/kept.json", "r@example.org")
    for key, bucket in [
        (f"{PREFIX}/queue/kept.json", "another-bucket"),
        (f"{PREFIX}/ledger/kept.json", BUCKET),
        (f"{PREFIX}/queue/kept.txt", BUCKET),
        ("queue/kept.json", BUCKET),  # outside the store's prefix
    ]:
        assert handler(_s3_event(key, bucket), Context()) == {"batches": 0, "sent": 0, "retry": 0}
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}
    sqs_test = {
        "Records": [{"messageId": "t", "eventSource": "aws:sqs", "body": json.dumps(test_event)}]
    }
    assert handler(sqs_test, Context()) == {"batchItemFailures": []}
    assert list(stack.store.keys(layout.QUEUE)) == ["queue/kept.json"]
    assert stack.moto.ses_messages() == []


def test_a_direct_event_raises_when_the_store_fails_so_lambda_retries(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    [key] = hand_off(3)
    monkeypatch.setenv("MAILSPOOL_STORE", "s3://no-such-bucket/spool")
    with pytest.raises(BatchNotDelivered, match="queue/"):
        handler(_s3_event(f"{PREFIX}/{key}", "no-such-bucket"), Context())
    sqs_event = SHAPES["SQS"](f"{PREFIX}/{key}")
    sqs_event["Records"][0]["body"] = json.dumps(_s3_event(f"{PREFIX}/{key}", "no-such-bucket"))
    assert handler(sqs_event, Context()) == {"batchItemFailures": [{"itemIdentifier": "m1"}]}


def test_batch_objects_written_by_a_request_are_private_and_encrypted(stack: Stack) -> None:
    [key] = hand_off(2, From="a@example.com")
    head = stack.s3.head_object(Bucket=BUCKET, Key=f"{PREFIX}/{key}")
    assert head["ServerSideEncryption"] == "AES256"
    grants = stack.s3.get_object_acl(Bucket=BUCKET, Key=f"{PREFIX}/{key}")["Grants"]
    assert [g["Grantee"]["Type"] for g in grants] == ["CanonicalUser"]
    assert {g["Permission"] for g in grants} == {"FULL_CONTROL"}


@pytest.fixture(autouse=True)
def _json_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every line the handler logs is one JSON object without addresses or bodies."""
    caplog.set_level("INFO", logger="mailspool.aws")
    yield
    for record in caplog.records:
        if record.name == "mailspool.aws":
            line = json.loads(record.getMessage())
            assert "@" not in json.dumps(line)


# -- CloudWatch metrics (Embedded Metric Format) ----------------------------------------


def emf_lines(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    return [line for line in lines if "CloudWatchMetrics" in line["_aws"]]


def test_each_batch_run_prints_an_emf_line_with_its_counts(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_METRICS_NAMESPACE", "mailspool/test-stack")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "test-deliver")
    hand_off(3)
    assert stack.run_queue() == []
    [line] = emf_lines(capsys.readouterr().out)
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "mailspool/test-stack"
    assert directive["Dimensions"] == [["Function"]]
    names = [metric["Name"] for metric in directive["Metrics"]]
    assert names == ["Sent", "Failed", "Suppressed", "Throttled", "BatchLatency", "QuotaHeadroom"]
    assert line["QuotaHeadroom"] > 99  # 3 of SES's 50,000 a day (moto_ses_quota)
    assert (line["Function"], line["Sent"], line["Failed"], line["Throttled"]) == (
        "test-deliver",
        3,
        0,
        0,
    )
    assert line["BatchLatency"] > 0
    assert isinstance(line["_aws"]["Timestamp"], int)


def test_throttled_sends_are_counted(
    stack: Stack, capsys: pytest.CaptureFixture[str], smtp_server: SMTPSink
) -> None:
    smtp_server.defer_first_attempt()  # 451 to every first try, as a throttling server
    transport = open_transport(smtp_server.url)
    hand_off(2)
    assert stack.run_queue(transport=transport) == []
    transport.close()
    [line] = emf_lines(capsys.readouterr().out)
    assert (line["Sent"], line["Throttled"]) == (2, 2)
