"""Returned mail on AWS: a bounce mailbox that SES receiving writes to S3.

An SES receipt rule for the bounce address (``MAILSPOOL_BOUNCE_ADDRESS``) with an S3
action writes each returned message, raw, to ``<prefix>/returned/`` in the store's
bucket; the bucket notifies the same queue as the batches, and the handler reads each
such object here: bounded in size, parsed and verified as ``mailspool bounces ingest``
does (``feedback.returned``), recorded, then deleted. The same message twice changes
nothing (ingest's seen markers). A store error leaves the object and fails its SQS
message alone, so SQS brings it back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from mailspool.aws.events import ObjectEvent
from mailspool.config import Settings
from mailspool.errors import ConfigurationError, KeyNotFound, ObjectRefused, StoreError
from mailspool.feedback.returned import ReturnedReport, record_returned
from mailspool.feedback.settings import bounce_verp, feedback_options
from mailspool.spool import layout
from mailspool.stores.base import Store

__all__ = ["MAX_RETURNED_BYTES", "read_returned_mail", "returned_key"]

log = logging.getLogger("mailspool.aws")

#: A returned message larger than this is not read (SES receiving takes up to 40 MB;
#: a bounce quotes the headers, or the message, it returns).
MAX_RETURNED_BYTES = 10 * 1024 * 1024


def returned_key(store: Store, item: ObjectEvent) -> str | None:
    """The store key of a returned message the event announces, or None."""
    root = f"{getattr(store, 'prefix', '')}/".lstrip("/")
    if item.bucket != getattr(store, "bucket", None):
        return None
    if not item.key.startswith(root + layout.RETURNED):
        return None
    return item.key[len(root) :]


def read_returned_mail(
    items: Iterable[ObjectEvent], store: Store, settings: Settings
) -> tuple[ReturnedReport, list[str]]:
    """Record every returned message among ``items``; the report, and the SQS message
    ids to fail (a store error: tried again)."""
    report, retry = ReturnedReport(), []
    for item in items:
        key = returned_key(store, item)
        if key is None:
            continue
        try:
            _read_one(store, key, settings, report)
        except StoreError as err:
            log.error(json.dumps({"event": "returned-error", "key": key, "error": str(err)}))
            if item.message_id:
                retry.append(item.message_id)
        except ConfigurationError as err:  # left in place for when the settings are right
            log.error(json.dumps({"event": "returned-error", "key": key, "error": str(err)}))
    return report, retry


def _read_one(store: Store, key: str, settings: Settings, report: ReturnedReport) -> None:
    verp = bounce_verp(settings)
    if verp is None:
        raise ConfigurationError(
            f"{key}: returned mail arrived, but MAILSPOOL_BOUNCE_ADDRESS and "
            "MAILSPOOL_BOUNCE_SECRET are not set on this function"
        )
    try:
        raw = store.get_at_most(key, MAX_RETURNED_BYTES, "MAX_RETURNED_BYTES")
    except KeyNotFound:
        return  # read and deleted by an earlier delivery of the same event
    except ObjectRefused as err:
        log.warning(json.dumps({"event": "ignored", "key": key, "reason": str(err)}))
        store.delete(key)
        return
    record_returned(store, raw, verp, report=report, options=feedback_options(settings))
    store.delete(key)
    log.info(json.dumps({"event": "returned", "key": key, "report": report.line()}))
