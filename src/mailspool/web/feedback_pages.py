"""The dashboard's pages on the feedback loop: the suppression list and each e-mail's trace.

Listing the whole suppression list is an operator's action (never the send path): the
page shows the first entries in key order and a lookup of one address.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from mailspool.feedback.suppression import Reason, Suppression, SuppressionList
from mailspool.feedback.trace import EmailTrace, trace_address, trace_message
from mailspool.stores.base import Store

__all__ = ["REASONS", "SuppressionPage", "find_trace", "suppression_page"]

REASONS = [str(reason) for reason in Reason]
_LISTED = 200


@dataclass(frozen=True, slots=True)
class SuppressionPage:
    entries: list[Suppression]
    total: int
    found: Suppression | None
    looked_up: str


def suppression_page(store: Store, lookup: str = "") -> SuppressionPage:
    suppressions = SuppressionList(store, cache_ttl=0)
    found = suppressions.get(lookup) if lookup.strip() else None
    entries = list(islice(suppressions.entries(), _LISTED))
    return SuppressionPage(entries, suppressions.count(), found, lookup)


def add_suppression(store: Store, address: str, reason: str) -> None:
    """Suppress ``address`` (ValueError for an unknown reason or a bad address)."""
    SuppressionList(store, cache_ttl=0).add(address, Reason(reason or Reason.MANUAL))


def remove_suppression(store: Store, address: str) -> bool:
    return SuppressionList(store, cache_ttl=0).remove(address)


def find_trace(store: Store, target: str) -> list[EmailTrace]:
    """The e-mails to an address, or the one with a Message-ID or provider id (as
    ``mailspool trace``)."""
    target = target.strip()
    if not target:
        return []
    if "@" in target and not target.startswith("<"):
        return trace_address(store, target)
    return trace_message(store, target)
