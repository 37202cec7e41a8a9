"""What the webhook settings accept: the receiver's URL, its Standard Webhooks secret
(``whsec_<base64>``) and the events sent; each a ``Rule`` of the settings table, so a bad
value is refused where it is read, naming the setting."""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from mailspool.setting_rules import Rule

__all__ = [
    "ALL_EVENTS",
    "WEBHOOK_EVENTS",
    "WEBHOOK_SECRET",
    "WEBHOOK_URL",
    "EventType",
    "secret_bytes",
]

_SECRET_PREFIX = "whsec_"  # noqa: S105 (the form's prefix, no secret)
_SHORTEST_SECRET = 24  # bytes, as the specification says (192 to 512 bits)
_LONGEST_SECRET = 64


class EventType(StrEnum):
    """The state changes of an e-mail that become webhook events (``email.<state>``)."""

    QUEUED = "email.queued"
    SENT = "email.sent"
    FAILED = "email.failed"
    DEFERRED = "email.deferred"
    BOUNCED = "email.bounced"
    COMPLAINED = "email.complained"
    UNSUBSCRIBED = "email.unsubscribed"
    SUPPRESSED = "email.suppressed"
    CANCELLED = "email.cancelled"


ALL_EVENTS = frozenset(EventType)


def secret_bytes(value: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; ValueError when it is not one (strict
    base64, 24 to 64 bytes), where the library would take any text."""
    if not value.startswith(_SECRET_PREFIX):
        raise ValueError("no whsec_ prefix")
    encoded = value[len(_SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as err:
        raise ValueError("not base64") from err
    if not _SHORTEST_SECRET <= len(key) <= _LONGEST_SECRET:
        raise ValueError("wrong length")
    return key


def _secret(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    secret_bytes(value.strip())
    return value.strip()


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(value)
    if any(ord(c) < 33 or ord(c) == 127 for c in value.strip()):
        raise ValueError(value)
    return value.strip()


def _events(value: Any) -> frozenset[str]:
    names = value.split(",") if isinstance(value, str) else list(value)
    chosen = {str(name).strip() for name in names if str(name).strip()}
    if not chosen:
        raise ValueError(value)
    if "all" in chosen:
        return frozenset(ALL_EVENTS)
    # ``sent`` and ``email.sent`` both name the event
    spelled = {name if name.startswith("email.") else f"email.{name}" for name in chosen}
    if not spelled <= ALL_EVENTS:
        raise ValueError(value)
    return frozenset(spelled)


WEBHOOK_URL = Rule("an http:// or https:// URL with a host", _url)
WEBHOOK_SECRET = Rule(
    f"a Standard Webhooks secret: whsec_ then the base64 of {_SHORTEST_SECRET} to "
    f"{_LONGEST_SECRET} bytes",
    _secret,
    secret=True,
)
WEBHOOK_EVENTS = Rule(
    "`all` or event names, comma-separated, of: "
    + ", ".join(event.value.removeprefix("email.") for event in EventType),
    _events,
)
