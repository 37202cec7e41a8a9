"""Amazon SNS messages posted to an HTTP(S) endpoint: check that SNS sent them.

Anyone can POST to a public URL, so every message is verified before it is believed:

- ``SignatureVersion`` 1 (RSA with SHA-1) or 2 (RSA with SHA-256), over the fields SNS
  signs for the message's ``Type``, in SNS's order;
- the signing certificate is fetched only from ``https://sns.<region>.amazonaws.com/``
  (the host must match that pattern exactly: no lookalike such as
  ``sns.us-east-1.amazonaws.com.evil.example``, no other scheme, no port, no user), its
  path ending ``.pem``, and kept in a cache; it must be valid now;
- the ``TopicArn`` must be in the allow-list;
- the signed ``Timestamp`` must be at most ``MAX_AGE`` old (65 minutes): SNS stops
  retrying an HTTP(S) delivery within 3,600 seconds whatever the subscription's
  delivery policy (a hard limit of SNS), so an older message is a replay; 5 minutes
  more allow for clock skew and the delivery itself. Within that hour a replay is
  harmless: the SES event it carries was recorded once (``ingest``'s seen markers);
- a ``SubscriptionConfirmation`` is confirmed by fetching its ``SubscribeURL`` only when
  the signature holds and that URL is on the same host pattern.

``trusted_origin`` makes one more origin (``http://127.0.0.1:8443``) acceptable for
certificates and subscribe URLs: for tests, which sign with a key of their own. Nothing
in production sets it.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailspool.errors import MailspoolError, MissingDependency

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["MAX_AGE", "SNSMessage", "SNSVerifier", "UntrustedMessage", "is_aws_sns_url"]

#: ``sns.<region>.amazonaws.com``, nothing before or after.
_AWS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-[0-9]\.amazonaws\.com")
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_FIELDS["UnsubscribeConfirmation"] = _SIGNED_FIELDS["SubscriptionConfirmation"]
_VERSIONS = frozenset({"1", "2"})  # RSA with SHA-1, RSA with SHA-256
_MAX_CERT = 64 * 1024
_CACHE_LIMIT = 64
_TIMEOUT = 5.0
#: Seconds after its ``Timestamp`` past which a signed message is refused (module doc).
MAX_AGE = 3600.0 + 300.0


class UntrustedMessage(MailspoolError):
    """The message cannot be shown to come from SNS for an allowed topic (answer 4xx)."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class SNSMessage:
    """A verified SNS message: its type, topic, id and payload."""

    type: str
    topic_arn: str
    message_id: str
    message: str
    subscribe_url: str | None = None


def is_aws_sns_url(url: str) -> bool:
    """True only for ``https://sns.<region>.amazonaws.com/...`` (no port, no user)."""
    try:
        parts = urlsplit(url)
        port, user = parts.port, parts.username  # a port such as "abc" raises
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and port is None
        and user is None
        and _AWS_HOST.fullmatch(parts.netloc) is not None
    )


class SNSVerifier:
    """Verifies SNS messages for a set of topics; thread-safe, caches certificates."""

    def __init__(
        self,
        topics: frozenset[str],
        *,
        trusted_origin: str | None = None,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock``: seconds since the epoch (tests pass their own)."""
        _require_cryptography()
        self.topics = topics
        self.max_age = max_age
        self._clock = clock
        self._trusted_origin = trusted_origin.rstrip("/") if trusted_origin else None
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def verify(self, fields: Mapping[str, Any]) -> SNSMessage:
        """The message, once every check of the module docstring passed; else raise
        ``UntrustedMessage`` (nothing has been fetched for a message that fails early)."""
        kind = _field(fields, "Type")
        if kind not in _SIGNED_FIELDS:
            raise UntrustedMessage(f"unknown SNS message type {kind!r}", 400)
        topic = _field(fields, "TopicArn")
        if topic not in self.topics:
            raise UntrustedMessage(f"topic {topic!r} is not in the allow-list")
        version = _field(fields, "SignatureVersion")
        if version not in _VERSIONS:
            raise UntrustedMessage(f"unsupported SignatureVersion {version!r}", 400)
        try:
            signature = base64.b64decode(_field(fields, "Signature"), validate=True)
        except ValueError:
            raise UntrustedMessage("the Signature is not base64", 400) from None
        key = self._public_key(_field(fields, "SigningCertURL"))
        _check_signature(key, signature, _string_to_sign(kind, fields), version)
        self._check_fresh(_field(fields, "Timestamp"))
        return SNSMessage(
            kind,
            topic,
            _field(fields, "MessageId"),
            _field(fields, "Message"),
            fields.get("SubscribeURL") if kind != "Notification" else None,
        )

    def _check_fresh(self, timestamp: str) -> None:
        """Refuse a message signed more than ``max_age`` seconds ago (a replay)."""
        try:
            signed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
            if signed.tzinfo is None:
                signed = signed.replace(tzinfo=UTC)
            age = self._clock() - signed.timestamp()
        except (ValueError, OverflowError):
            raise UntrustedMessage(f"the Timestamp {timestamp[:40]!r} is not a time", 400) from None
        if age > self.max_age:
            raise UntrustedMessage(
                f"the message was signed at {timestamp}, more than {self.max_age / 60:g} "
                "minutes ago: SNS retries for at most an hour, so it is refused as a replay"
            )

    def confirm(self, message: SNSMessage) -> None:
        """Fetch a verified SubscriptionConfirmation's SubscribeURL (on the SNS host only)."""
        url = message.subscribe_url or ""
        if not self.trusted_url(url):
            raise UntrustedMessage(f"SubscribeURL {url!r} is not an SNS endpoint")
        _fetch(url)

    def trusted_url(self, url: str) -> bool:
        if is_aws_sns_url(url):
            return True
        origin = self._trusted_origin
        return origin is not None and url.startswith(origin + "/")

    def _public_key(self, url: str) -> rsa.RSAPublicKey:
        if not self.trusted_url(url) or not _path(url).endswith(".pem"):
            raise UntrustedMessage(f"SigningCertURL {url!r} is not an SNS certificate")
        with self._lock:
            cached = self._keys.get(url)
        if cached is not None:
            return cached
        key = _certificate_key(_fetch(url), url)
        with self._lock:
            if len(self._keys) >= _CACHE_LIMIT:
                self._keys.clear()
            self._keys[url] = key
        return key


def _string_to_sign(kind: str, fields: Mapping[str, Any]) -> bytes:
    lines = []
    for name in _SIGNED_FIELDS[kind]:
        value = fields.get(name)
        if value is None and name == "Subject":
            continue  # SNS signs Subject only when the message has one
        if not isinstance(value, str):
            raise UntrustedMessage(f"field {name!r} is missing", 400)
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


def _require_cryptography() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise MissingDependency("SNS signature verification", "sns") from err


def _check_signature(key: rsa.RSAPublicKey, signature: bytes, signed: bytes, version: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS v1 is SHA-1
    try:
        key.verify(signature, signed, padding.PKCS1v15(), digest)
    except InvalidSignature:
        raise UntrustedMessage("the signature does not match the message") from None


def _certificate_key(pem: bytes, url: str) -> rsa.RSAPublicKey:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise UntrustedMessage(f"{url} does not hold a PEM certificate") from None
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise UntrustedMessage(f"the certificate at {url} is not valid now")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise UntrustedMessage(f"the certificate at {url} has no RSA key")
    return key


def _fetch(url: str) -> bytes:
    import urllib.request  # here: the worker imports this module but never fetches

    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:  # noqa: S310 - checked URL
            data: bytes = response.read(_MAX_CERT + 1)
    except OSError as err:
        raise UntrustedMessage(f"cannot fetch {url}: {err}", 502) from None
    except ValueError as err:  # http.client's InvalidURL: a space or control character
        raise UntrustedMessage(f"{url!r} is not a URL that can be fetched: {err}", 400) from None
    if len(data) > _MAX_CERT:
        raise UntrustedMessage(f"{url} answered with more than {_MAX_CERT} bytes", 502)
    return data


def _field(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise UntrustedMessage(f"field {name!r} is missing", 400)
    return value


def _path(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:  # an unbalanced "[" in the host
        return ""
