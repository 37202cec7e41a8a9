"""Two-way sync with SES's account-level suppression list (SES API v2).

- pull: every address SES suppresses (``ListSuppressedDestinations``, all pages) is
  added here with its reason (``BOUNCE`` -> bounce, ``COMPLAINT`` -> complaint) and the
  time SES last updated it; an address already here keeps its entry;
- push: every address suppressed here for a bounce or a complaint is put on SES's list
  (``PutSuppressedDestination``; SES knows no other reasons, so unsubscribes and manual
  entries stay here only).

An operator's command (``mailspool suppression sync-ses``): push reads the whole list.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailspool._backends import boto3_client
from mailspool.errors import StoreError
from mailspool.feedback.suppression import Reason, SuppressionList

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

__all__ = ["open_client", "pull", "push"]

_FROM_SES = {"BOUNCE": Reason.BOUNCE, "COMPLAINT": Reason.COMPLAINT}
_TO_SES: dict[Reason, Any] = {Reason.BOUNCE: "BOUNCE", Reason.COMPLAINT: "COMPLAINT"}
_NOTE = "SES account-level suppression list"


def open_client(region: str | None) -> SESV2Client:
    client: SESV2Client = boto3_client("sesv2", region, user="the SES suppression sync")
    return client


def pull(client: SESV2Client, suppressions: SuppressionList) -> int:
    """Add SES's entries here; the number of addresses read."""
    count = 0
    for item in _ses_entries(client):
        reason = _FROM_SES.get(str(item.get("Reason")))
        address = item.get("EmailAddress")
        if reason is None or not isinstance(address, str):
            continue
        updated = item.get("LastUpdateTime")
        since = updated.isoformat() if isinstance(updated, datetime) else None
        suppressions.add(address, reason, diagnostic=_NOTE, since=since)
        count += 1
    return count


def push(client: SESV2Client, suppressions: SuppressionList) -> int:
    """Put bounce and complaint entries on SES's list; the number put."""
    count = 0
    for entry in suppressions.entries():
        ses_reason = _TO_SES.get(entry.reason)
        if ses_reason is None or entry.diagnostic == _NOTE:
            continue  # SES has no such reason, or the entry came from SES
        _call(client.put_suppressed_destination, EmailAddress=entry.address, Reason=ses_reason)
        count += 1
    return count


def _ses_entries(client: SESV2Client) -> Iterator[Any]:
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"PageSize": 1000}
        if token:
            kwargs["NextToken"] = token
        page = _call(client.list_suppressed_destinations, **kwargs)
        yield from page.get("SuppressedDestinationSummaries", [])
        token = page.get("NextToken")
        if not token:
            return


def _call(method: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return method(**kwargs)
    except (BotoCoreError, ClientError) as err:
        raise StoreError(f"SES suppression list: {err}") from err
