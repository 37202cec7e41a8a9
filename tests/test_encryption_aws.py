"""Encryption at rest on S3 with AWS KMS keys, through moto in server mode (real HTTP,
plain boto3: S3 and KMS ``GenerateDataKey``/``Decrypt`` are moto's own), delivered to a
real SMTP server (aiosmtpd)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

import mailspool
from mailspool.aws.lambda_handler import handle
from mailspool.config import Settings
from mailspool.delivery.factory import open_worker
from mailspool.errors import StoreError
from mailspool.spool import layout
from mailspool.spool.envelope import is_sealed
from mailspool.spool.keyring import keyring_of
from mailspool.spool.quarantine import quarantined_files
from mailspool.spool.records import QuarantineError
from mailspool.spool.sealed_store import sealed
from mailspool.stores.s3 import S3Store
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.smtp_server import SMTPSink
from tests.test_encryption import (
    SECRETS,
    clear_texts_in,
    deliver,
    hand_off,
    new_key,
    sent_bytes,
)

BUCKET = "mailspool-sealed"
STORE = f"s3://{BUCKET}/spool"


@pytest.fixture
def s3(aws: MotoServer) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    keyring_of.cache_clear()  # each test's KMS keys are new: no client from another test
    return client


def kms_key() -> str:
    arn: str = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    return f"kms:{arn}"


def settings(server: SMTPSink, *keys: str) -> Settings:
    return Settings.load(store=STORE, transport=server.url, encryption_key=keys)


def objects(s3: Any) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {
        item["Key"]: s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for item in listed
        if "/.leases/" not in item["Key"]
    }


def test_kms_sealed_batches_deliver_and_the_bucket_holds_no_clear_text(
    s3: Any, smtp_server: SMTPSink
) -> None:
    key = kms_key()
    hand_off(settings(smtp_server, key))
    pending = objects(s3)
    assert any("/queue/" in name for name in pending)
    assert clear_texts_in(pending) == []

    assert deliver(settings(smtp_server, key)).sent == 3

    finished = objects(s3)
    assert any("/done/" in name for name in finished)
    assert clear_texts_in(finished) == []
    assert all(is_sealed(data) for name, data in finished.items() if "/done/" in name)
    assert len(smtp_server.envelopes) == 3
    assert all(SECRETS[2].encode() in e.content for e in smtp_server.envelopes)


def test_kms_and_clear_deliver_the_same_bytes(s3: Any, smtp_server: SMTPSink) -> None:
    clear = S3Store(bucket=BUCKET, prefix="clear")
    hand_off(Settings.load(store=f"s3://{BUCKET}/clear", transport=smtp_server.url))
    key = kms_key()
    target = sealed(S3Store(bucket=BUCKET, prefix="spool"), (key,))
    for name in [*clear.keys(layout.QUEUE), *clear.keys(layout.BLOBS)]:
        target.put(name, clear.get(name))

    assert deliver(Settings.load(store=f"s3://{BUCKET}/clear", transport=smtp_server.url)).sent
    clear_bytes = sent_bytes(smtp_server)
    assert deliver(settings(smtp_server, key)).sent == 3
    assert sent_bytes(smtp_server, 3) == clear_bytes


def test_rotation_from_a_local_key_to_kms_keeps_old_batches_deliverable(
    s3: Any, smtp_server: SMTPSink
) -> None:
    local, kms = new_key(), kms_key()
    hand_off(settings(smtp_server, local), count=2)
    hand_off(settings(smtp_server, kms, local), count=2)

    assert deliver(settings(smtp_server, kms, local)).sent == 4
    assert len(smtp_server.envelopes) == 4


def test_a_wrapped_key_kms_refuses_quarantines_the_batch(s3: Any, smtp_server: SMTPSink) -> None:
    key = kms_key()
    hand_off(settings(smtp_server, key), count=1)
    store = S3Store(bucket=BUCKET, prefix="spool")
    (name,) = store.keys(layout.QUEUE)
    original = store.get(name)
    wrapped = base64.urlsafe_b64decode(_field(original, b"wrapped_key"))
    changed = wrapped[:-1] + bytes([wrapped[-1] ^ 1])  # a byte of KMS's ciphertext blob
    store.put(name, original.replace(_field(original, b"wrapped_key"), _b64(changed)))

    report = deliver(settings(smtp_server, key))

    assert report.sent == 0
    assert smtp_server.envelopes == []
    (found,) = quarantined_files(store)
    error = sealed(store, (key,)).get(layout.error_key(found.key))
    assert "KMS refuses" in QuarantineError.decode(error, source=found.key).error


def _field(envelope: bytes, name: bytes) -> bytes:
    """The quoted value of one field of an envelope, as it is written."""
    return envelope.split(b'"' + name + b'":"')[1].split(b'"')[0]


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data)


def test_the_lambda_handler_delivers_kms_sealed_batches_through_ses(
    s3: Any, aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = kms_key()
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    for name, value in {
        "MAILSPOOL_STORE": STORE,
        "MAILSPOOL_TRANSPORT": "ses://us-east-1",
        "MAILSPOOL_SENDER": "Mailspool <mail@example.com>",
        "MAILSPOOL_MAX_RATE": "100000",  # moto's sandbox quota says 1/s
        "MAILSPOOL_ENCRYPTION_KEY": key,
    }.items():
        monkeypatch.setenv(name, value)
    with mailspool.request(settings=Settings.load()) as scope:
        for i in range(3):
            mailspool.send_mail(f"{SECRETS[1].replace('@', f'+{i}@')}", SECRETS[2], "<p>hi</p>")
    assert clear_texts_in(objects(s3)) == []

    records = [
        {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(f"spool/{name}")}},
        }
        for name in scope.keys
    ]
    answer = handle({"Records": records}, None)

    assert answer["sent"] == 3
    sent = aws.ses_messages()
    assert len(sent) == 3
    assert all(SECRETS[2] in json.dumps(message) for message in sent)
    assert clear_texts_in(objects(s3)) == []


def test_a_kms_key_the_worker_cannot_use_is_named_when_it_starts(
    s3: Any, smtp_server: SMTPSink
) -> None:
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    with (
        pytest.raises(StoreError, match=missing),
        open_worker(settings(smtp_server, f"kms:{missing}")),
    ):
        pass
