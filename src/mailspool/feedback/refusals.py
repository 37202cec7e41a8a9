"""Refusals in the SMTP session, recorded as hard bounces, as SES's are.

A relay that refuses a recipient with a ``5xx`` at ``RCPT`` (``Receipt.refused``, or a
``PermanentError``'s ``refused`` when it refused them all), or refuses a single-recipient
e-mail at ``DATA`` with an addressing status, has answered for the address. The worker
hands such answers to ``record_refusals`` (``delivery.attempt``, one call): each becomes
a ``FeedbackEvent`` and goes through ``feedback.ingest`` with the server's text, so
``trace``, the suppression list, rates and hooks show it as they show an SES bounce.
Only answers about the address count (``_ADDRESS_STATUSES``). The event id names the
batch, the e-mail and the recipient: a refusal seen again changes nothing.

``failed retry`` of such an e-mail first lifts the suppression its own refusal made
(``lift_refusals``): the operator retries because the address works again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from mailspool.address import canonical_address
from mailspool.errors import DeliveryError, InvalidMessage, PermanentError, StoreError
from mailspool.feedback.events import EventKind, FeedbackEvent, event_id, iso_time
from mailspool.feedback.ingest import ingest
from mailspool.feedback.suppression import Reason, SuppressionList, shared_suppressions
from mailspool.spool.records import FailedRecord
from mailspool.stores.base import Store
from mailspool.transports.base import Receipt

__all__ = ["lift_refusals", "record_refusals", "refusal_events", "session_refusals"]

log = logging.getLogger("mailspool.feedback")

#: Enhanced statuses (RFC 3463) that blame the recipient's address: bad mailbox, bad
#: domain, moved, null MX, disabled mailbox. Not 5.1.7/5.1.8 (the sender's address),
#: 5.2.2 (full: soft), 5.2.3 (too large), nor 5.3-5.7 (system, network, protocol,
#: content, policy: "relay access denied" must not suppress every recipient).
_ADDRESS_STATUSES = frozenset(
    {"5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.4", "5.1.5", "5.1.6", "5.1.10", "5.2.1"}
)
_ANSWER = re.compile(r"^(?P<code>5[0-9][0-9])(?:[ -]+(?P<status>[245]\.[0-9]{1,3}\.[0-9]{1,3})\b)?")


def refusal_events(
    batch: str, index: int, provider_id: str, refused: Mapping[str, str]
) -> list[FeedbackEvent]:
    """Hard bounces for the recipients the server refused in the session with an answer
    about the address (5xx with status 5.1.x, 5.2.x or none); a refusal about the sender,
    the content or policy (5.7.x, 5.6.x...) is not the address's fault: not recorded."""
    now = iso_time(datetime.now(UTC))
    return [
        FeedbackEvent(
            id=event_id("refused", batch, str(index), canonical_address(address)),
            kind=EventKind.BOUNCED,
            provider_id=provider_id,
            timestamp=now,
            recipients=(address,),
            permanent=True,
            diagnostics={address: answer[:1000]},
            detail=f"Permanent/{_status(answer) or answer[:3]}",
            batch=batch,
            index=index,
        )
        for address, answer in refused.items()
        if _about_address(answer, rcpt=True)
    ]


def session_refusals(
    recipients: tuple[str, ...], result: Receipt | DeliveryError | InvalidMessage
) -> dict[str, str]:
    """The recipients an SMTP answer refused, with the answer: those ``Receipt.refused``
    or a ``PermanentError``'s ``refused`` lists (``RCPT``), or the one recipient of an
    e-mail whose content was refused with an addressing status (checked at ``DATA``)."""
    if isinstance(result, Receipt):
        return dict(result.refused)
    if not isinstance(result, PermanentError):
        return {}
    if result.refused:
        return dict(result.refused)
    if len(recipients) == 1 and _about_address(result.response, rcpt=False):
        return {recipients[0]: result.response}
    return {}


def _about_address(answer: str, *, rcpt: bool) -> bool:
    """A 5xx about the address: an addressing status, or (at RCPT) none at all."""
    found = _ANSWER.match(answer.strip())
    if found is None:
        return False
    status = found["status"]
    return status in _ADDRESS_STATUSES if status else rcpt


def record_refusals(
    store: Store,
    batch: str,
    index: int,
    provider_id: str,
    refused: Mapping[str, str],
    suppressions: SuppressionList | None = None,
) -> None:
    """``refusal_events`` recorded; a store error is logged, not raised: the refusal is
    in ``failed/`` either way, and the send it follows is over."""
    try:
        events = refusal_events(batch, index, provider_id, refused)
        if events:
            ingest(store, events, suppressions=suppressions)
    except (StoreError, InvalidMessage) as err:
        log.warning("refused recipients of %s #%d not recorded as bounces: %s", batch, index, err)


def lift_refusals(store: Store, record: FailedRecord) -> list[str]:
    """Before ``failed retry`` re-sends an e-mail that failed on refused recipients:
    lift the suppressions that this very refusal made (reason ``bounce``, the diagnostic
    being the answer the record keeps), so the operator's retry is not screened out by
    its own failure. Any other entry (another bounce, a complaint, a manual one) stays.
    The addresses lifted."""
    answers = [record.reason, *(record.refused or {}).values()]
    suppressions = shared_suppressions(store)
    lifted = []
    for address in record.recipients:
        try:
            entry = suppressions.get(address)
        except InvalidMessage:
            continue
        if entry is None or entry.reason is not Reason.BOUNCE or not entry.diagnostic:
            continue
        if any(entry.diagnostic in answer for answer in answers):
            suppressions.remove(address)
            lifted.append(address)
    return lifted


def _status(answer: str) -> str:
    found = re.search(r"\b[245]\.[0-9]{1,3}\.[0-9]{1,3}\b", answer)
    return found.group(0) if found else ""
