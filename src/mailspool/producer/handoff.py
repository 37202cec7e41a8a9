"""Write deferred e-mails to a store as batch files: one write per meta group.

This is the whole cost a request pays for its non-priority mail: group by meta (the
headers the e-mails share), encode each group once, one ``put`` per group. The article's
chunking (``MAILSPOOL_EMAILS_PER_FILE``) is available but off by default, since the
worker delivers a large batch in parallel itself and never runs into a timeout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailspool.message import Message
from mailspool.spool import batch, layout
from mailspool.spool.records import timestamp
from mailspool.stores.base import Store
from mailspool.webhook_rules import EventType
from mailspool.webhooks.events import WebhookEvent, email_event
from mailspool.webhooks.outbox import Outbox

__all__ = ["EncodedBatches", "encode_batches", "write_encoded"]


@dataclass(frozen=True, slots=True)
class EncodedBatches:
    """Batch files ready to write: ``batches`` as (queue key, bytes), ``blobs`` by key.

    Encoding once and writing separately lets a failed write be retried, or sent to a
    fallback store, with the same batch ids (see ``mailspool.producer.fallback``).
    """

    batches: list[tuple[str, bytes]]
    blobs: dict[str, bytes]
    #: webhook outbox objects (the ``email.queued`` events), written after the batches
    events: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.batches]


def encode_batches(
    messages: Iterable[Message],
    *,
    default_sender: str,
    emails_per_file: int = 0,
    front: bool = False,
    outbox: Outbox | None = None,
) -> EncodedBatches:
    """Group the messages by meta and encode each group (or chunk) as one batch file;
    ``front``: as priority batches, delivered before the others (``layout``);
    ``outbox``: with the ``email.queued`` events of the e-mails, if it wants them."""
    groups: dict[batch.MetaKey, list[Message]] = {}
    for message in messages:
        groups.setdefault(batch.meta_key(message, default_sender), []).append(message)
    blobs: dict[str, bytes] = {}

    def keep_blob(digest: str, content: bytes) -> None:
        blobs.setdefault(layout.blob_key(digest), content)

    now = datetime.now(UTC)
    batches = []
    wanted = outbox is not None and outbox.wants(EventType.QUEUED)
    queued: list[WebhookEvent] | None = [] if wanted else None
    for group in groups.values():
        base_id = layout.new_batch_id(now.timestamp())
        for number, chunk in enumerate(_chunks(group, emails_per_file)):
            batch_id = base_id if emails_per_file <= 0 else f"{base_id}-{number}"
            if front:
                batch_id = layout.as_priority(batch_id)
            data = batch.encode(
                chunk,
                batch_id=batch_id,
                default_sender=default_sender,
                created_at=now,
                blob_writer=keep_blob,
            )
            batches.append((layout.queue_key(batch_id), data))
            if queued is not None:
                queued.extend(_queued(batch_id, chunk, now))
    events = outbox.bundles(queued) if outbox is not None and queued else []
    return EncodedBatches(batches=batches, blobs=blobs, events=events)


def _queued(batch_id: str, chunk: Sequence[Message], now: datetime) -> list[WebhookEvent]:
    stamp = timestamp(now)
    return [
        email_event(
            EventType.QUEUED,
            batch_id,
            index,
            recipients=message.to,
            when=stamp,
            extra={"tags": list(message.tags), "metadata": dict(message.metadata)},
        )
        for index, message in enumerate(chunk)
    ]


def write_encoded(store: Store, encoded: EncodedBatches) -> None:
    """Blobs first (create only), then the batch files that refer to them."""
    for key, content in encoded.blobs.items():
        store.put_new(key, content)
    for key, data in encoded.batches:
        store.put(key, data)
    for key, data in encoded.events:  # after: an event never announces an unwritten batch
        store.put(key, data)


def _chunks(items: Sequence[Message], size: int) -> Iterable[Sequence[Message]]:
    if size <= 0:
        yield items
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]
