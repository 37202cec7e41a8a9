"""Write deferred e-mails to a store as batch files: one write per meta group.

This is the whole cost a request pays for its non-priority mail (the article's S4-S5,
S7): group by meta, encode each group once, one ``put`` per group. The article's
chunking (``MAILSPOOL_EMAILS_PER_FILE``) is available but off by default, since the
worker delivers a large batch in parallel itself and never runs into a timeout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from mailspool import batch, layout
from mailspool.message import Message
from mailspool.stores.base import Store

__all__ = ["write_batches"]


def write_batches(
    store: Store,
    messages: Iterable[Message],
    *,
    default_sender: str,
    emails_per_file: int = 0,
) -> list[str]:
    """Write the messages as batch files; return the keys written, oldest first."""
    groups: dict[batch.MetaKey, list[Message]] = {}
    for message in messages:
        groups.setdefault(batch.meta_key(message, default_sender), []).append(message)
    written_blobs: set[str] = set()

    def write_blob(digest: str, content: bytes) -> None:
        if digest not in written_blobs:
            store.put_new(layout.blob_key(digest), content)
            written_blobs.add(digest)

    now = datetime.now(UTC)
    keys = []
    for group in groups.values():
        base_id = layout.new_batch_id(now.timestamp())
        for number, chunk in enumerate(_chunks(group, emails_per_file)):
            batch_id = base_id if emails_per_file <= 0 else f"{base_id}-{number}"
            data = batch.encode(
                chunk,
                batch_id=batch_id,
                default_sender=default_sender,
                created_at=now,
                blob_writer=write_blob,
            )
            key = layout.queue_key(batch_id)
            store.put(key, data)
            keys.append(key)
    return keys


def _chunks(items: Sequence[Message], size: int) -> Iterable[Sequence[Message]]:
    if size <= 0:
        yield items
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]
