"""The webhook outbox: events wait in the store itself until the receiver takes them.

```
webhooks/pending/<bundle>.<n>.json   n events not yet delivered, with their retry state
webhooks/failed/<bundle>.<n>.json    n events expired (or a bundle that cannot be read)
```
Events are written in bundles, one object per group (a batch's outcomes, a request's
queued e-mails, a feedback message's events), so the outbox costs one store write per
group, not one per e-mail. ``<bundle>`` is a time-sorted id (``layout.new_batch_id``):
listing ``pending/`` yields the oldest first, and the number of events and the age
of the oldest are read from the keys alone (``status`` reads no object).
A bundle delivered in part is written again under its new count, then the old key
is removed: a crash in between delivers its events again, never loses them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import orjson

from mailspool.errors import InvalidRecord
from mailspool.spool import layout
from mailspool.spool.keys import check_name, is_safe_name
from mailspool.stores.base import Store
from mailspool.webhook_rules import ALL_EVENTS
from mailspool.webhooks.events import WebhookEvent

__all__ = [
    "FAILED",
    "PENDING",
    "Bundle",
    "BundleKey",
    "Outbox",
    "OutboxStats",
    "outbox_stats",
]

PENDING = "webhooks/pending/"
FAILED = "webhooks/failed/"


@dataclass(frozen=True, slots=True)
class BundleKey:
    """A bundle's key, parsed: its folder, id and event count."""

    _KEY: ClassVar[re.Pattern[str]] = re.compile(r"(?P<bundle>[^/]+)\.(?P<count>[0-9]{1,6})\.json")

    folder: str
    bundle: str
    count: int

    @property
    def key(self) -> str:
        return f"{self.folder}{check_name(self.bundle, 'webhook bundle id')}.{self.count}.json"

    @classmethod
    def parse(cls, key: str) -> BundleKey | None:
        """The key's parts; None for a key that is no bundle's."""
        for folder in (PENDING, FAILED):
            found = cls._KEY.fullmatch(key.removeprefix(folder)) if key.startswith(folder) else None
            if found and is_safe_name(found["bundle"]):
                return cls(folder, found["bundle"], int(found["count"]))
        return None


_VERSION = 1
#: most events in one bundle: a larger group is written as several
MOST_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class Bundle:
    """Events waiting together and their retry state: ``attempts`` made, the time of
    the next (``next_try``, seconds since the epoch) and the last ``error``."""

    events: tuple[WebhookEvent, ...]
    attempts: int = 0
    next_try: float = 0.0
    error: str = ""
    #: entries that could not be read back as events, with why (dropped, logged: never sent)
    unreadable: tuple[tuple[Any, str], ...] = field(default=(), compare=False)

    def encode(self) -> bytes:
        document = {
            "version": _VERSION,
            "attempts": self.attempts,
            "next_try": self.next_try,
            "error": self.error,
            "events": [event.to_record() for event in self.events],
        }
        return orjson.dumps(document)

    @classmethod
    def decode(cls, data: bytes) -> Bundle:
        """A bundle read from the store; ``InvalidRecord`` when it is not one. An entry
        that is no valid event is kept apart in ``unreadable``, the others still go."""
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise InvalidRecord(f"webhook bundle is not JSON: {err}") from None
        if not isinstance(document, dict) or document.get("version") != _VERSION:
            raise InvalidRecord(f"webhook bundle must be an object with version {_VERSION}")
        attempts, next_try = document.get("attempts"), document.get("next_try")
        if not isinstance(attempts, int) or not isinstance(next_try, int | float):
            raise InvalidRecord("webhook bundle fields 'attempts', 'next_try' must be numbers")
        entries = document.get("events")
        if not isinstance(entries, list) or len(entries) > MOST_EVENTS:
            raise InvalidRecord(f"webhook bundle 'events' must be a list of <= {MOST_EVENTS}")
        events, unreadable = [], []
        for entry in entries:
            try:
                events.append(WebhookEvent.from_record(entry))
            except InvalidRecord as err:
                unreadable.append((entry, str(err)))
        error = document.get("error")
        return cls(
            tuple(events), attempts, float(next_try), str(error or "")[:1000], tuple(unreadable)
        )


class Outbox:
    """Writes events to the outbox, keeping only the types chosen
    (``MAILSPOOL_WEBHOOK_EVENTS``)."""

    def __init__(self, store: Store, chosen: Iterable[str] = ALL_EVENTS) -> None:
        self.store = store
        self.chosen = frozenset(chosen)

    def wants(self, event_type: str) -> bool:
        return event_type in self.chosen

    def add(self, events: Iterable[WebhookEvent], *, now: float | None = None) -> list[str]:
        """Write the chosen events, at most ``MOST_EVENTS`` per object; the keys written."""
        written = []
        for key, data in self.bundles(events, now=now):
            self.store.put(key, data)
            written.append(key)
        return written

    def bundles(
        self, events: Iterable[WebhookEvent], *, now: float | None = None
    ) -> list[tuple[str, bytes]]:
        """The objects ``add`` writes, as (key, bytes), for a caller that writes them
        with its own (the producer's batch write)."""
        kept = [event for event in events if event.type in self.chosen]
        found = []
        for start in range(0, len(kept), MOST_EVENTS):
            part = tuple(kept[start : start + MOST_EVENTS])
            found.append(
                (BundleKey(PENDING, layout.new_batch_id(now), len(part)).key, Bundle(part).encode())
            )
        return found


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What ``status`` shows of the outbox: events pending (and in how many bundles),
    the age of the oldest in seconds, and events set aside as failed."""

    pending: int
    bundles: int
    oldest_age: float | None
    failed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bundle_keys(store: Store, folder: str) -> Iterator[BundleKey]:
    """The bundles in ``folder``, oldest first; other keys there are passed over."""
    for key in store.keys(folder):
        parsed = BundleKey.parse(key)
        if parsed is not None and parsed.folder == folder:
            yield parsed


def outbox_stats(store: Store, *, now: float) -> OutboxStats:
    """The outbox counted from its keys alone."""
    pending = list(bundle_keys(store, PENDING))
    times = [t for t in (layout.id_time(b.bundle) for b in pending) if t is not None]
    return OutboxStats(
        pending=sum(b.count for b in pending),
        bundles=len(pending),
        oldest_age=max(now - min(times), 0.0) if times else None,
        failed=sum(b.count for b in bundle_keys(store, FAILED)),
    )
