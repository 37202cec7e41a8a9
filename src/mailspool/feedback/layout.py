"""Where feedback lives in a store: one function per kind of key.

```
suppression/<h:3>/<h>.json    one suppressed address (h: SHA-256 of the address)
suppression/keyed/<k>.json    an erased address still suppressed (k: its keyed hash,
                              ``feedback.keyed``)
suppression/tenant/<t>/<h:3>/<h>.json
                              one address suppressed for SES tenant t only
suppression/keyed/tenant/<t>/<k>.json
                              an erased address still suppressed for tenant t
history/<h:3>/<h>             a log of the events received for one address
events/<provider-id>          a log of the events received for one sent e-mail
events-seen/<event-id>        an event already acted on (hooks run once)
complaints-bounces/<YYYYMMDD> a log of the day's hard bounces and complaints (rates)
```
One small object per address keeps a check at one read however long the list grows.
``h`` is the SHA-256 of the address's canonical form (``mailspool.address``), so every
spelling of an address finds the same key; ``legacy_*_keys`` are where versions before
that form kept an address (the whole address lower-cased, the domain as written).
"""

from __future__ import annotations

import hashlib
import re

from mailspool.address import canonical_address, legacy_forms
from mailspool.tenant_options import TENANT_NAME

__all__ = [
    "BAD_DAYS",
    "HISTORY",
    "MESSAGE_EVENTS",
    "SEEN",
    "SUPPRESSION",
    "TENANT_SUPPRESSION",
    "address_digest",
    "bad_day_key",
    "history_key",
    "legacy_history_keys",
    "legacy_suppression_keys",
    "message_events_key",
    "normalize_address",
    "seen_key",
    "suppression_key",
    "tenant_of_key",
    "tenant_suppression_key",
    "tenant_suppression_prefix",
]

SUPPRESSION = "suppression/"
TENANT_SUPPRESSION = "suppression/tenant/"
HISTORY = "history/"
MESSAGE_EVENTS = "events/"
SEEN = "events-seen/"
BAD_DAYS = "complaints-bounces/"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}")


#: ``Ana <"Ana"@Example.com>`` -> ``ana@example.com``: the canonical form (one function,
#: ``mailspool.address.canonical_address``); raises InvalidMessage if invalid.
normalize_address = canonical_address


def address_digest(address: str) -> str:
    """The SHA-256 of an address's canonical form, hex: the key of everything about it."""
    return _digest(canonical_address(address))


def suppression_key(address: str) -> str:
    digest = address_digest(address)
    return f"{SUPPRESSION}{digest[:3]}/{digest}.json"


def tenant_suppression_prefix(tenant: str) -> str:
    """The folder of ``tenant``'s own suppressions; ValueError for a name that is not a
    tenant's (``tenant_options.TENANT_NAME``): it becomes part of a key."""
    if not TENANT_NAME.fullmatch(tenant):
        raise ValueError(f"not a tenant's name (MAILSPOOL_SES_TENANTS): {tenant[:80]!r}")
    return f"{TENANT_SUPPRESSION}{tenant}/"


def tenant_suppression_key(tenant: str, address: str) -> str:
    """Where ``address`` is suppressed for ``tenant`` only (ValueError: a bad name)."""
    digest = address_digest(address)
    return f"{tenant_suppression_prefix(tenant)}{digest[:3]}/{digest}.json"


def tenant_of_key(key: str) -> str | None:
    """The tenant a tenant suppression key names, or None (not one, or a bad name)."""
    if not key.startswith(TENANT_SUPPRESSION):
        return None
    tenant = key.removeprefix(TENANT_SUPPRESSION).partition("/")[0]
    return tenant if TENANT_NAME.fullmatch(tenant) else None


def history_key(address: str) -> str:
    digest = address_digest(address)
    return f"{HISTORY}{digest[:3]}/{digest}"


def legacy_suppression_keys(address: str) -> list[str]:
    """Keys an older version may have stored this address's suppression under."""
    return [f"{SUPPRESSION}{d[:3]}/{d}.json" for d in map(_digest, legacy_forms(address))]


def legacy_history_keys(address: str) -> list[str]:
    return [f"{HISTORY}{d[:3]}/{d}" for d in map(_digest, legacy_forms(address))]


def _digest(form: str) -> str:
    return hashlib.sha256(form.encode()).hexdigest()


def message_events_key(provider_id: str) -> str:
    """Provider ids (SES: ``0100018c...-000000``) are used as they are when plain."""
    name = provider_id.strip("<>")
    if not _SAFE_ID.fullmatch(name):
        name = "h-" + hashlib.sha256(provider_id.encode()).hexdigest()
    return f"{MESSAGE_EVENTS}{name}"


def bad_day_key(day: str) -> str:
    """``day`` as ``YYYYMMDD`` (UTC)."""
    return f"{BAD_DAYS}{day}"


def seen_key(event_id: str) -> str:
    return f"{SEEN}{hashlib.sha256(event_id.encode()).hexdigest()}"
