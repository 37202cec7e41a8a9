"""``mailspool erase ADDRESS``: forget one person's address everywhere the store holds it.

In this order, each step safe to run again (a second run finds nothing left to do):

1. **suppression**: a suppressed address keeps only its keyed hash
   (``feedback.keyed``), for the account and for each SES tenant that suppressed it,
   so later mail to it is still refused;
2. **pending** (``queue/``, ``scheduled/``, and the fallback store's): e-mails to it are
   cancelled under each batch's claim (``ops.erase_pending``);
3. **everything else**, every object the store lists (``done/``, ``ledger/``,
   ``failed/``, ``cancelled/``, ``quarantine/``, ``keys/``, ``paused/``, ``events/``,
   ``history/``, ``events-seen/``, ``complaints-bounces/``, ``returned/``, the dashboard's
   tallies, the webhook outbox ``webhooks/`` (under its drain's claim; it names the
   address by its SHA-256 digest, a spelling ``erase_match`` knows), and any prefix a
   later version adds): each object
   holding it in any spelling
   is redacted in place (``ops.erase_redact``); its own history log is deleted; a failed,
   cancelled or quarantined record of e-mails sent to it alone is deleted, and so is a
   partial failure whose only refused recipient it was; a returned message (raw MIME)
   that names it, in a header or a decoded part, is deleted;
4. **blobs**: an attachment only erased e-mails referred to is deleted;
5. **the audit record** ``erasures/<time>-<id>.json``: when, the keyed hash, and which
   keys were redacted or removed, never the address.

An object that cannot be parsed is scrubbed as bytes and reported; one larger than the
read limit is reported, not read. A batch being delivered is left and reported, its
ledger too (a batch still in ``queue/`` keeps its ledger as it is): run ``erase`` again
once the worker is done. With ``MAILSPOOL_ENCRYPTION_KEY``, the store is walked as
stored: each sealed object or log record is opened with the store's keys, redacted as
above, and sealed again under a fresh data key (the old one, and with it the old
plaintext, is gone); one that does not open is reported, left as it is.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from mailspool.errors import KeyNotFound, StoreError, Undecryptable
from mailspool.feedback import keyed
from mailspool.feedback import layout as feedback_layout
from mailspool.feedback.suppression import shared_suppressions
from mailspool.ops.erase_match import AddressMatch
from mailspool.ops.erase_pending import PendingOutcome, erase_pending
from mailspool.ops.erase_redact import redact_bytes
from mailspool.ops.erase_walk import Read, read_ahead
from mailspool.producer.fallback import fallback_url_for
from mailspool.producer.scope import settings_here
from mailspool.spool import layout
from mailspool.spool.records import BatchOutline, timestamp
from mailspool.spool.schedule import CANCELLED, SCHEDULED
from mailspool.spool.sealed_store import as_stored, open_stored, sealed, sealed_size
from mailspool.stores.base import ObjectInfo, Store, default_owner
from mailspool.stores.open_stores import shared_store
from mailspool.webhooks.deliver import CLAIM as OUTBOX_CLAIM

__all__ = ["ERASURES", "ErasureReport", "erase", "erase_address"]

log = logging.getLogger("mailspool")

ERASURES = "erasures/"
#: Objects larger than this are reported, not read (no record mailspool writes is).
READ_LIMIT = 64 << 20
_PENDING = (layout.QUEUE, SCHEDULED)
WEBHOOKS = "webhooks/"
_OUTBOX_TTL = 300.0
_NOT_WALKED = (*_PENDING, ERASURES, keyed.KEYED, layout.BLOBS, WEBHOOKS)
_DELETED_WHEN_EMPTIED = (layout.FAILED, CANCELLED, layout.QUARANTINE)
_REFERRING = (layout.QUEUE, SCHEDULED, layout.DONE, layout.FAILED, CANCELLED, layout.QUARANTINE)


@dataclass(slots=True)
class ErasureReport:
    """What one ``erase`` did; ``as_record`` is its audit record (no address in it)."""

    keyed_hash: str
    erased_at: str
    suppressed: bool = False
    cancelled: int = 0
    redacted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    record_key: str = ""
    blobs: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Nothing was left: no batch being delivered, nothing too large to read."""
        return not (self.skipped or self.too_large)

    def as_record(self) -> dict[str, Any]:
        return {
            "erasedAt": self.erased_at,
            "keyedHash": self.keyed_hash,
            "suppressed": self.suppressed,
            "cancelledEmails": self.cancelled,
            "counts": _counts(self.redacted, self.removed),
            "redacted": self.redacted,
            "removed": self.removed,
            "skippedBeingDelivered": self.skipped,
            "unparsed": self.unparsed,
            "tooLarge": self.too_large,
            "complete": self.complete,
        }


def erase(
    address: str, *, store: Store | str | None = None, fallback: Store | str | None = None
) -> ErasureReport:
    """Erase ``address`` from the store (see the module docstring) and return what was
    done; the audit record is written at ``report.record_key``. ``store`` None: the store
    of the running request scope's settings, else of the settings loaded now, with its
    fallback store (``MAILSPOOL_FALLBACK_STORE``); a ``Store`` or URL: that store, and
    ``fallback`` if given."""
    settings = settings_here()
    if store is None:
        store = settings.store
        fallback = fallback or fallback_url_for(settings.store, settings.fallback_store)
    keys = settings.encryption_key
    opened = store if isinstance(store, Store) else sealed(shared_store(store), keys)
    spare = (
        fallback
        if isinstance(fallback, Store) or fallback is None
        else sealed(shared_store(fallback), keys)
    )
    return erase_address(address, opened, fallback=spare)


def erase_address(
    address: str, store: Store, *, fallback: Store | None = None, now: datetime | None = None
) -> ErasureReport:
    """Erase ``address`` from ``store`` (and its ``fallback``); see the module docstring.
    InvalidMessage if ``address`` is not an e-mail address."""
    match = AddressMatch.of(address)
    moment = now or datetime.now(UTC)
    key = keyed.made_erasure_key(store)
    report = ErasureReport(keyed.keyed_digest(key, address), timestamp(moment))
    report.suppressed = shared_suppressions(store).keep_keyed(address, report.erased_at) is not None
    own = _own_keys(address)
    for one in (store, fallback) if fallback is not None else (store,):
        _take(report, erase_pending(one, match, READ_LIMIT))
        walked = [info for info in one.list("") if not info.key.startswith(_NOT_WALKED)]
        _walk(one, walked, match, own, report)
        _erase_outbox(one, match, own, report)
    _erase_blobs(store, report)
    report.redacted = _hide(report.redacted, own, match)
    report.removed = _hide(report.removed, own, match)
    report.record_key = _write_record(store, report, moment)
    return report


def _walk(
    store: Store,
    infos: list[ObjectInfo],
    match: AddressMatch,
    own: tuple[str, ...],
    report: ErasureReport,
) -> None:
    """Redact or remove each object of ``infos`` (see ``_erase_object``)."""
    unsent = {layout.batch_id_from_key(key) for key in store.keys(layout.QUEUE)}
    beneath = as_stored(store)  # read as stored: sealed objects and log lines alike
    limit = READ_LIMIT if beneath is store else sealed_size(READ_LIMIT)
    for info, read in read_ahead(beneath, infos, limit):
        if _ledger_batch(info.key) in unsent:  # a worker may be appending to it
            if isinstance(read, bytes) and match.found_in(read):
                report.skipped.append(info.key)  # left as it is, reported
            continue
        _erase_object(store, info, read, match, own, report)


def _erase_outbox(
    store: Store, match: AddressMatch, own: tuple[str, ...], report: ErasureReport
) -> None:
    """The webhook outbox, under the claim its drain holds: a drain under way writes
    back the bundles it read, as it read them. While a drain holds it, the outbox is
    reported as being delivered (``erase`` exits 1: run it again)."""
    infos = list(store.list(WEBHOOKS))
    if not infos:
        return
    lease = store.claim(OUTBOX_CLAIM, default_owner(), _OUTBOX_TTL)
    if lease is None:
        report.skipped.append(WEBHOOKS)
        return
    try:
        _walk(store, infos, match, own, report)
    finally:
        store.release(lease)


def _own_keys(address: str) -> tuple[str, ...]:
    """The keys that belong to the address itself: its history logs (every form)."""
    return (feedback_layout.history_key(address), *feedback_layout.legacy_history_keys(address))


def _ledger_batch(key: str) -> str | None:
    """The batch of a ledger key (``ledger/<id>``, or ``ledger/<id>/<part>`` on S3)."""
    parts = key.split("/")
    return parts[1] if parts[0] + "/" == layout.LEDGER and len(parts) > 1 else None


def _take(report: ErasureReport, outcome: PendingOutcome) -> None:
    report.cancelled += outcome.cancelled
    report.redacted += outcome.rewritten
    report.removed += outcome.removed
    report.skipped += outcome.skipped
    report.unparsed += outcome.unparsed
    report.too_large += outcome.too_large
    report.blobs += outcome.blobs


def _erase_object(
    store: Store,
    info: ObjectInfo,
    read: Read,
    match: AddressMatch,
    own: tuple[str, ...],
    report: ErasureReport,
) -> None:
    """Redact or remove one object, ``read`` as stored (sealed or clear)."""
    if info.key in own or info.key.startswith(tuple(f"{k}/" for k in own)) or match.found(info.key):
        store.delete(info.key)  # its own log, or a key that names it: nothing to keep
        report.removed.append(info.key)
        return
    if read is None:
        report.too_large.append(info.key)
        return
    if isinstance(read, KeyNotFound):
        return
    if isinstance(read, StoreError):  # a link or device the store refuses: reported
        log.warning("erase: %s", read)
        report.unparsed.append(info.key)
        return
    try:
        data, seal_again = open_stored(store, info.key, read)
    except Undecryptable as err:  # not the store's keys: nothing to read, nothing to redact
        log.warning("erase: %s", err)
        report.unparsed.append(info.key)
        return
    if info.key.startswith(layout.RETURNED):
        if _mime_names(data, match):
            store.delete(info.key)
            report.removed.append(info.key)
        return
    redacted = redact_bytes(data, match)
    if redacted.data == data:
        return
    report.blobs += redacted.blobs
    if redacted.unparsed:
        report.unparsed.append(info.key)
    if (redacted.only_erased and info.key.startswith(_DELETED_WHEN_EMPTIED)) or (
        layout.is_partial_failure(info.key) and not _refused_left(redacted.data)
    ):
        store.delete(info.key)
        report.removed.append(info.key)
        return
    as_stored(store).put(info.key, seal_again(redacted.data))
    report.redacted.append(info.key)


def _refused_left(data: bytes) -> bool:
    """Whether a partial failure still names a refused recipient (else there is nothing
    left to retry: a retry would send the e-mail again to those who got it)."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return True
    return not isinstance(document, dict) or bool(document.get("refused"))


def _mime_names(data: bytes, match: AddressMatch) -> bool:
    """True if a raw message names the address: as written, or in a decoded header or
    part (base64, quoted-printable, RFC 2047)."""
    if match.found_in(data):
        return True
    message = email.message_from_bytes(data, policy=email.policy.default)
    for part in message.walk():
        if any(match.found(str(value)) for value in part.values()):
            return True
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and match.found_in(payload):
            return True
    return False


def _erase_blobs(store: Store, report: ErasureReport) -> None:
    """Delete the blobs only erased e-mails referred to (none other does now). A batch
    that cannot be read might refer to one: then none is deleted (listed as too large)."""
    candidates = set(report.blobs)
    if not candidates:
        report.blobs = []
        return
    infos = [
        info
        for prefix in _REFERRING
        for info in store.list(prefix)
        if not layout.is_error_key(info.key)
    ]
    for info, read in read_ahead(store, infos, READ_LIMIT):
        if read is None or (isinstance(read, StoreError) and not isinstance(read, KeyNotFound)):
            if info.key not in report.too_large:
                report.too_large.append(info.key)
            candidates = set()
        elif isinstance(read, bytes):
            outline = BatchOutline.read(read)
            candidates -= set(outline.blobs if outline else ())
    report.blobs = sorted(layout.blob_key(digest) for digest in candidates)
    for key in report.blobs:
        store.delete(key)
    report.removed += report.blobs


def _hide(keys: list[str], own: tuple[str, ...], match: AddressMatch) -> list[str]:
    """Keys as the audit record shows them: the address's own (named by its plain hash)
    as ``history/(the address's own)``, a key that named it with ``[erased]``; each once."""
    shown = (
        f"{feedback_layout.HISTORY}(the address's own)"
        if any(key == k or key.startswith(f"{k}/") for k in own)
        else match.scrub(key)
        for key in keys
    )
    return list(dict.fromkeys(shown))


def _counts(*groups: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in (key for group in groups for key in group):
        prefix = key.partition("/")[0] + "/"
        counts[prefix] = counts.get(prefix, 0) + 1
    return counts


def _write_record(store: Store, report: ErasureReport, moment: datetime) -> str:
    key = f"{ERASURES}{moment.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{os.urandom(4).hex()}.json"
    store.put(key, orjson.dumps(report.as_record()))
    return key
