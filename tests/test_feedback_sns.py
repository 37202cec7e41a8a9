"""POST /events/ses: SNS messages signed by a key and certificate made here, the
certificate served by a real local HTTP server that records every request. The endpoint
trusts that server's origin through ``trusted_origin``, the test-only setting; the
AWS pattern is tested on its own (``is_aws_sns_url``)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailspool.feedback.events import parse_ses_event
from mailspool.feedback.http import SesEndpoint
from mailspool.feedback.ingest import ingest
from mailspool.feedback.layout import history_key
from mailspool.feedback.sns import MAX_AGE, SNSVerifier, is_aws_sns_url
from mailspool.feedback.suppression import SuppressionList
from mailspool.stores.memory import MemoryStore
from tests import ses_events
from tests.fixtures.smtp_server import self_signed_builder

TOPIC = "arn:aws:sns:us-east-1:123456789012:mailspool-ses"


def make_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_certificate(key: rsa.RSAPrivateKey) -> bytes:
    builder = self_signed_builder(
        key, "sns.amazonaws.com", since=timedelta(minutes=5), lasting=timedelta(days=1)
    )
    certificate = builder.sign(key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class CertServer:
    """A local HTTP server: the certificate at /cert.pem; every request path recorded."""

    origin: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return make_key()


@pytest.fixture
def server(key: rsa.RSAPrivateKey) -> Iterator[CertServer]:
    pem = make_certificate(key)
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            body = pem if self.path == "/cert.pem" else b"<ConfirmSubscriptionResponse/>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield CertServer(f"http://127.0.0.1:{httpd.server_address[1]}", requests)
    finally:
        httpd.shutdown()
        httpd.server_close()


def sign(message: dict[str, Any], key: rsa.RSAPrivateKey, version: str = "1") -> dict[str, Any]:
    """Sign as SNS does: the type's fields, sorted, as 'Name\\nvalue\\n' lines."""
    names = (
        ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        if message["Type"] == "Notification"
        else ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    )
    text = "".join(f"{n}\n{message[n]}\n" for n in names if n in message)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text.encode(), padding.PKCS1v15(), digest)
    return {
        **message,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
    }


def notification(server: CertServer, payload: dict[str, Any], **extra: str) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "5a1b2c3d-0000-0000-0000-000000000001",
        "TopicArn": TOPIC,
        "Message": json.dumps(payload),
        "Timestamp": "2026-11-29T07:00:00.000Z",
        "SigningCertURL": f"{server.origin}/cert.pem",
        **extra,
    }


def confirmation(server: CertServer) -> dict[str, Any]:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "5a1b2c3d-0000-0000-0000-000000000002",
        "TopicArn": TOPIC,
        "Token": "token-1",
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": f"{server.origin}/?Action=ConfirmSubscription&Token=token-1",
        "Timestamp": "2026-11-29T07:00:00.000Z",
        "SigningCertURL": f"{server.origin}/cert.pem",
    }


#: The messages' Timestamp; the endpoints' clock reads a minute later unless told.
SIGNED_AT = datetime(2026, 11, 29, 7, 0, tzinfo=UTC).timestamp()


class Clock:
    """A clock the test moves: no sleeping."""

    def __init__(self, now: float = SIGNED_AT + 60) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def endpoint(store: MemoryStore, server: CertServer, clock: Clock | None = None) -> SesEndpoint:
    verifier = SNSVerifier(frozenset({TOPIC}), trusted_origin=server.origin, clock=clock or Clock())
    return SesEndpoint(store, verifier)


def post(target: SesEndpoint, message: dict[str, Any]) -> int:
    return target.handle(
        "POST", {"content-type": "text/plain"}, json.dumps(message).encode()
    ).status


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_valid_notification_is_recorded(
    server: CertServer, key: rsa.RSAPrivateKey, version: str
) -> None:
    store = MemoryStore()
    bounce = ses_events.bounce("0100-id-1", "gone@example.com")
    signed = sign(
        notification(server, bounce, Subject="Amazon SES Email Event Notification"), key, version
    )
    assert post(endpoint(store, server), signed) == 200
    assert SuppressionList(store).is_suppressed("gone@example.com")


def refused(server: CertServer, key: rsa.RSAPrivateKey) -> dict[str, dict[str, Any]]:
    bounce = ses_events.bounce("0100-id-2", "gone@example.com")
    good = sign(notification(server, bounce), key)
    tampered = {**good, "Message": json.dumps(ses_events.bounce("0100-id-2", "ceo@example.com"))}
    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    elsewhere = sign(
        notification(server, bounce, SigningCertURL="https://example.com/cert.pem"), key
    )
    lookalike = sign(
        notification(
            server,
            bounce,
            SigningCertURL="https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        ),
        key,
    )
    other_topic = sign({**notification(server, bounce), "TopicArn": TOPIC + "-other"}, key)
    return {
        "bad signature": tampered,
        "certificate on another host": elsewhere,
        "lookalike host": lookalike,
        "missing signature": unsigned,
        "topic not allowed": other_topic,
        "signed by another key": sign(notification(server, bounce), make_key()),
    }


def test_untrusted_messages_get_4xx_and_change_nothing(
    server: CertServer, key: rsa.RSAPrivateKey
) -> None:
    store = MemoryStore()
    target = endpoint(store, server)
    for name, message in refused(server, key).items():
        status = post(target, message)
        assert 400 <= status < 500, name
    assert list(store.keys("")) == []
    assert set(server.requests) <= {"/cert.pem"}  # only our own server's certificate


def test_a_forged_subscription_confirmation_makes_the_server_fetch_nothing(
    server: CertServer, key: rsa.RSAPrivateKey
) -> None:
    forged = sign(confirmation(server), make_key())  # not SNS's key
    lookalike = sign(
        {
            **confirmation(server),
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com.evil.example/x",
        },
        key,
    )
    target = endpoint(MemoryStore(), server)
    assert post(target, sign(notification(server, {"x": 1}), key)) == 400  # warms the cache
    server.requests.clear()
    assert post(target, forged) == 403
    assert post(target, lookalike) == 403
    assert server.requests == []


def test_a_genuine_subscription_confirmation_is_confirmed(
    server: CertServer, key: rsa.RSAPrivateKey
) -> None:
    assert post(endpoint(MemoryStore(), server), sign(confirmation(server), key)) == 200
    assert "/?Action=ConfirmSubscription&Token=token-1" in server.requests


def test_other_methods_and_bodies_are_refused(server: CertServer) -> None:
    target = endpoint(MemoryStore(), server)
    assert target.handle("GET", {}, b"").status == 405
    assert target.handle("POST", {}, b"not json").status == 400
    assert target.handle("POST", {}, b"x" * 400_000).status == 413
    assert server.requests == []


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
        ("https://sns.eu-west-2.amazonaws.com/x.pem", True),
        ("https://sns.us-gov-west-1.amazonaws.com/x.pem", True),
        ("http://sns.us-east-1.amazonaws.com/x.pem", False),
        ("https://sns.us-east-1.amazonaws.com.evil.example/x.pem", False),
        ("https://evil-sns.us-east-1.amazonaws.com/x.pem", False),
        ("https://sns.us-east-1.amazonaws.com:8443/x.pem", False),
        ("https://user@sns.us-east-1.amazonaws.com/x.pem", False),
        ("https://sns.amazonaws.com/x.pem", False),
        ("https://snsXus-east-1.amazonaws.com/x.pem", False),
        ("https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/x.pem", False),
    ],
)
def test_only_the_aws_sns_host_pattern_is_trusted(url: str, trusted: bool) -> None:
    assert is_aws_sns_url(url) is trusted
    assert SNSVerifier(frozenset()).trusted_url(url) is trusted


def answer(target: SesEndpoint, message: dict[str, Any]) -> tuple[int, str]:
    response = target.handle("POST", {}, json.dumps(message).encode())
    return response.status, response.body.decode()


def test_a_message_signed_more_than_65_minutes_ago_is_refused_naming_the_rule(
    server: CertServer, key: rsa.RSAPrivateKey
) -> None:
    store, clock = MemoryStore(), Clock()
    target = endpoint(store, server, clock)
    signed = sign(notification(server, ses_events.bounce("0100-id-7", "old@example.com")), key)
    assert MAX_AGE == 65 * 60
    clock.now = SIGNED_AT + MAX_AGE + 1
    status, text = answer(target, signed)
    assert status == 403
    assert "more than 65 minutes ago" in text
    assert "replay" in text
    assert list(store.keys("")) == []
    clock.now = SIGNED_AT + MAX_AGE - 1  # SNS's last retry, late by a few minutes
    assert answer(target, signed)[0] == 200
    assert SuppressionList(store).is_suppressed("old@example.com")


def test_a_signed_timestamp_that_is_not_a_time_is_refused(
    server: CertServer, key: rsa.RSAPrivateKey
) -> None:
    store = MemoryStore()
    bounce = ses_events.bounce("0100-id-8", "a@example.com")
    for when in ("yesterday", "2026-13-01T00:00:00Z", "9" * 5000):
        status, text = answer(
            endpoint(store, server), sign(notification(server, bounce, Timestamp=when), key)
        )
        assert status == 400
        assert "is not a time" in text
    assert list(store.keys("")) == []


def test_a_replay_after_an_operator_removed_the_address_changes_nothing(
    server: CertServer, key: rsa.RSAPrivateKey
) -> None:
    store, clock = MemoryStore(), Clock()
    target = endpoint(store, server, clock)
    bounce = ses_events.bounce("0100-id-9", "back@example.com")
    signed = sign(notification(server, bounce), key)
    assert answer(target, signed)[0] == 200
    suppressions = SuppressionList(store, cache_ttl=0)
    assert suppressions.remove("back@example.com")  # the operator's decision
    history = history_key("back@example.com")
    # SNS's own retry (same MessageId), the same SES event in another SNS message, and
    # the same event from another route (ingest directly): each a no-op
    clock.now = SIGNED_AT + 30 * 60
    again = sign(
        notification(server, bounce, MessageId="5a1b2c3d-0000-0000-0000-00000000000a"), key
    )
    assert answer(target, signed) == (200, "recorded 1 event(s)\n")
    assert answer(target, again)[0] == 200
    assert ingest(store, [parse_ses_event(bounce)]).new == 0
    assert not suppressions.is_suppressed("back@example.com")
    assert len(store.read_log(history)) == 1  # the event was not even appended again
    clock.now = SIGNED_AT + 2 * 3600  # past SNS's retries: refused before anything
    assert answer(target, signed)[0] == 403
    assert not suppressions.is_suppressed("back@example.com")
    # a new bounce of the same address is a new event: it suppresses again
    later = ses_events.bounce("0100-id-10", "back@example.com")
    fresh = sign(
        notification(
            server,
            later,
            MessageId="5a1b2c3d-0000-0000-0000-00000000000b",
            Timestamp="2026-11-29T08:59:00.000Z",
        ),
        key,
    )
    assert answer(target, fresh)[0] == 200
    assert suppressions.is_suppressed("back@example.com")
