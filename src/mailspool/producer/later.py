"""E-mails with a time to go, a time to expire or an idempotency key.

Such an e-mail is written at once, as a batch of its own, even inside a request scope:
its key must be accepted (or refused) before ``send_mail`` returns, and ``cancel`` must
find its batch. A due time in the future puts it in ``scheduled/`` (see
``mailspool.spool.schedule``), otherwise in ``queue/``. The write is the scope's bounded
write with its fallback store (``mailspool.producer.fallback.write_durably``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailspool.config import Settings
from mailspool.errors import InvalidMessage
from mailspool.message import Message
from mailspool.producer import idempotency
from mailspool.producer.fallback import write_durably
from mailspool.producer.handoff import EncodedBatches
from mailspool.spool import batch, layout
from mailspool.spool.records import KeyRecord, Timing, moment, timestamp
from mailspool.spool.schedule import scheduled_key
from mailspool.stores.base import Store
from mailspool.tracing import stamped, write_span

__all__ = ["Later", "When", "accept_key", "moment_of", "parse_when", "write_later"]

#: A timezone-aware datetime, or seconds from now.
When = datetime | float | int


@dataclass(frozen=True, slots=True)
class Later:
    """``send_at``, ``expires_at`` and ``key`` as ``send_mail`` takes them."""

    send_at: When | None = None
    expires_at: When | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        """A key of the wrong type or length is refused here, before anything is sent or
        written: InvalidMessage naming ``key`` and the rule."""
        if self.key is not None:
            idempotency.check_key(self.key)

    def __bool__(self) -> bool:
        return not (self.send_at is None and self.expires_at is None and self.key is None)


def parse_when(text: str, field: str) -> float | datetime:
    """``"3600"`` (seconds from now) or ``"2026-11-30T09:00:00+01:00"`` (ISO 8601 with an
    offset), as a header or a command-line flag gives it; InvalidMessage otherwise, a time
    outside the years 1 to 9999 once in UTC included."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return moment(text.strip())
    except ValueError as err:
        raise InvalidMessage(
            f"{err} (give seconds from now or an ISO 8601 time with its offset: "
            "2026-11-30T09:00:00Z)",
            field=field,
        ) from None


def moment_of(value: When | None, field: str, now: datetime) -> datetime | None:
    """A timezone-aware datetime as it is; a number as seconds after ``now``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidMessage(
                "must be timezone-aware (a naive datetime has no defined moment)", field=field
            )
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
            raise InvalidMessage(
                f"{value.isoformat()} falls outside the years 1 to 9999 in UTC", field=field
            ) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage("must be a datetime or a number of seconds from now", field=field)
    try:
        return now + timedelta(seconds=value)
    except (OverflowError, ValueError):  # NaN, infinity, beyond the year 9999
        raise InvalidMessage(f"{value!r} seconds from now is no time", field=field) from None


def write_later(store: Store, message: Message, later: Later, settings: Settings) -> bool:
    """Write one e-mail as its own batch; False (nothing written) if its key was already
    accepted within ``MAILSPOOL_IDEMPOTENCY_WINDOW``. Raises ``InvalidMessage`` for a
    bad time or key, ``StoreError`` if neither the store nor its fallback took it."""
    now = datetime.now(UTC)
    due = moment_of(later.send_at, "send_at", now)
    expires = moment_of(later.expires_at, "expires_at", now)
    batch_id = layout.new_batch_id(now.timestamp())
    location = layout.queue_key(batch_id) if due is None or due <= now else None
    location = location or scheduled_key(due or now, batch_id)
    if later.key is not None and not accept_key(store, later.key, location, settings, batch_id):
        return False
    timing = Timing(
        send_at=None if due is None else timestamp(due),
        expires_at=None if expires is None else timestamp(expires),
        key=later.key,
    )
    try:
        _write(store, message, batch_id, location, timing, settings)
    except BaseException:
        if later.key is not None:  # nothing queued: the key may be used again
            idempotency.forget(store, later.key)
        raise
    return True


def accept_key(
    store: Store, key: str, location: str, settings: Settings, batch_id: str | None = None
) -> bool:
    """Record ``key`` for the batch at ``location`` (empty: sent at once); False if it
    was already accepted within ``MAILSPOOL_IDEMPOTENCY_WINDOW``."""
    idempotency.check_key(key)
    now = datetime.now(UTC)
    batch_id = batch_id or layout.new_batch_id(now.timestamp())
    record = KeyRecord(key, batch_id, location, timestamp(now))
    return idempotency.reserve(store, record, window=settings.idempotency_window, now=now)


def _write(
    store: Store,
    message: Message,
    batch_id: str,
    location: str,
    timing: Timing,
    settings: Settings,
) -> None:
    blobs: dict[str, bytes] = {}

    def keep_blob(digest: str, content: bytes) -> None:
        blobs.setdefault(layout.blob_key(digest), content)

    messages = stamped([message])
    with write_span(messages):
        data = batch.encode(
            messages,
            batch_id=batch_id,
            default_sender=settings.sender,
            blob_writer=keep_blob,
            timing=timing,
        )
        write_durably(
            store,
            EncodedBatches([(location, data)], blobs),
            timeout=settings.write_timeout,
            attempts=settings.write_attempts,
            fallback_base=settings.fallback_store,
        )
