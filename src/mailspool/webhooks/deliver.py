"""The deliverer: drains the outbox, oldest bundle first, one signed POST per event.

Run by the worker between batches, by the Lambda handler after its batch, and by
``mailspool webhooks drain``. One drain at a time per store: it holds the claim
``webhooks-outbox`` (a second worker finds it held and leaves the outbox alone).

As the Standard Webhooks specification recommends, only a 2xx delivers, and every other
answer is retried with exponential backoff and jitter, for days
(``MAILSPOOL_WEBHOOK_RETENTION``, 3 by default): 5 s, then doubling, at most an hour
apart. A bundle is due when its ``next_try`` has come; its events go in order and
delivered ones leave it. When the receiver is down, busy or asks to wait
(``http.Outcome.UNAVAILABLE``), the rest of the bundle is written back with its next
try and the drain stops: a receiver that is down gets one request per delay, not one
per event; ``Retry-After`` lengthens the delay, and 410 Gone (the application asks for
no more events) makes it the longest. An event the receiver answers about, but not with
a 2xx (``REJECTED``: a 400, a 404...), waits in a bundle of its own with its own
backoff while the others go on. An event still undelivered after the retention is set
aside in ``webhooks/failed/`` with its last error. Delivery is at least once: an event
leaves the outbox only after its 2xx, so a crash in between sends it again, under its id.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from mailspool.errors import InvalidRecord, KeyNotFound, LeaseLost, ObjectRefused
from mailspool.spool import layout
from mailspool.stores.base import Store, default_owner
from mailspool.webhooks.events import WebhookEvent
from mailspool.webhooks.http import Answer, Outcome, Receiver
from mailspool.webhooks.outbox import FAILED, PENDING, Bundle, BundleKey, bundle_keys

__all__ = ["Deliverer", "DrainReport", "retry_delay"]

log = logging.getLogger("mailspool.webhooks")

CLAIM = "webhooks-outbox"
_CLAIM_TTL = 300.0
_FIRST_DELAY = 5.0
#: a retry's delay is ``retry_delay`` plus up to this fraction of it, drawn at random
JITTER = 0.2
_LONGEST_DELAY = 3600.0
#: largest bundle object read; a larger one is set aside unread
BUNDLE_BYTES = 32 * 1024 * 1024


def retry_delay(attempts: int) -> float:
    """Seconds before the next try of a bundle that failed ``attempts`` times, before
    its jitter (up to ``JITTER`` more, so that retries do not come in step)."""
    return min(_FIRST_DELAY * float(2 ** max(min(attempts, 30) - 1, 0)), _LONGEST_DELAY)


def _delay(attempts: int) -> float:
    return retry_delay(attempts) * (1 + JITTER * random.random())


@dataclass(slots=True)
class DrainReport:
    """What one drain did: events delivered, rejected (each waits on its own), expired
    (set aside), and whether it stopped on a receiver that was down, busy or asked to
    wait (``waiting``: its answer)."""

    delivered: int = 0
    rejected: int = 0
    expired: int = 0
    waiting: str = ""
    busy: bool = False  # another process holds the outbox


class Deliverer:
    """Delivers the outbox of ``store`` to ``receiver``; ``clock`` decides what is due
    and what has expired (a test passes its own)."""

    def __init__(
        self,
        store: Store,
        receiver: Receiver,
        *,
        retention: float = 3 * 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.receiver = receiver
        self.retention = retention
        self.clock = clock
        self._owner = default_owner()
        self._quiet_until = 0.0  # a receiver that did not answer: not before then
        #: the next try of bundles this deliverer read or wrote, by key: not read before
        self._due: dict[str, float] = {}

    def drain(self, *, stop: Callable[[], bool] | None = None) -> DrainReport:
        """Deliver every due bundle until the receiver stops answering (after it did
        not, nothing is tried here until that bundle's next try), or ``stop()`` says
        so before a bundle (the Lambda handler's deadline)."""
        report = DrainReport()
        if self.clock() < self._quiet_until:
            report.waiting = "waiting for the receiver's next try"
            return report
        now = self.clock()
        listed = {parsed.key: parsed for parsed in bundle_keys(self.store, PENDING)}
        self._due = {key: due for key, due in self._due.items() if key in listed}
        pending = [p for key, p in listed.items() if self._due.get(key, 0.0) <= now]
        if not pending:  # the usual case: no claim taken (a write, on S3), nothing read
            return report
        lease = self.store.claim(CLAIM, self._owner, _CLAIM_TTL)
        if lease is None:
            report.busy = True
            return report
        try:
            for parsed in pending:
                if (stop is not None and stop()) or not self._bundle(parsed, report):
                    break
                if lease.expires - time.time() < _CLAIM_TTL / 2:  # a long drain keeps it
                    lease = self.store.renew(lease, _CLAIM_TTL)
        except LeaseLost:
            log.warning("webhook outbox: the claim was taken over; this drain stops")
        finally:
            self.store.release(lease)
        return report

    def _bundle(self, parsed: BundleKey, report: DrainReport) -> bool:
        """Deliver one bundle if due; False when the receiver stopped answering."""
        now = self.clock()
        try:
            bundle = Bundle.decode(self.store.get_at_most(parsed.key, BUNDLE_BYTES))
        except KeyNotFound:
            return True
        except (InvalidRecord, ObjectRefused) as err:
            self._set_aside_unread(parsed, str(err))
            return True
        if bundle.next_try > now:
            self._due[parsed.key] = bundle.next_try
            return True
        born = layout.id_time(parsed.bundle)
        if born is not None and now - born > self.retention:
            reason = (
                f"expired: not delivered within MAILSPOOL_WEBHOOK_RETENTION "
                f"({self.retention:g} s); last error: {bundle.error}"
            )
            self._set_aside(parsed, bundle.events, reason)
            report.expired += len(bundle.events)
            return True
        return self._send(parsed, bundle, report, now)

    def _send(self, parsed: BundleKey, bundle: Bundle, report: DrainReport, now: float) -> bool:
        rejected: list[tuple[WebhookEvent, Answer]] = []
        kept: set[str] = set()  # keys written back, which must stay
        for number, event in enumerate(bundle.events):
            answer = self.receiver.post(event)
            if answer.outcome is Outcome.DELIVERED:
                report.delivered += 1
            elif answer.outcome is Outcome.REJECTED:
                rejected.append((event, answer))
            else:
                kept |= self._hold(parsed, bundle, rejected, now)
                kept.add(self._postpone(parsed, bundle, number, answer, now))
                report.rejected += len(rejected)
                report.waiting = answer.detail
                break
        else:
            kept |= self._hold(parsed, bundle, rejected, now)
            report.rejected += len(rejected)
            for entry, why in bundle.unreadable:
                log.error("webhook bundle %s: an entry dropped: %s (%r)", parsed.key, why, entry)
        if parsed.key not in kept:
            self.store.delete(parsed.key)
        return not report.waiting

    def _postpone(
        self, parsed: BundleKey, bundle: Bundle, first_left: int, answer: Answer, now: float
    ) -> str:
        """Write back the events not yet taken, with the next try; the key written. The
        whole outbox waits as long: the receiver is down, busy, or asked to wait."""
        attempts = bundle.attempts + 1
        delay = max(_delay(attempts), answer.retry_after or 0.0)
        if answer.gone:
            delay = _LONGEST_DELAY
            log.error(
                "the webhook receiver answered 410 Gone: it asks for no more events; they "
                "wait (MAILSPOOL_WEBHOOK_RETENTION) until MAILSPOOL_WEBHOOK_URL changes"
            )
        rest = replace(
            bundle,
            events=bundle.events[first_left:],
            attempts=attempts,
            next_try=now + delay,
            error=answer.detail,
        )
        moved = BundleKey(PENDING, parsed.bundle, len(rest.events)).key
        self.store.put(moved, rest.encode())
        self._quiet_until = self._due[moved] = rest.next_try
        log.warning(
            "webhook receiver did not take event %s: %s; %d event(s) wait, next try in %.0f s",
            rest.events[0].id,
            answer.detail,
            len(rest.events),
            delay,
        )
        return moved

    def _hold(
        self,
        parsed: BundleKey,
        bundle: Bundle,
        rejected: list[tuple[WebhookEvent, Answer]],
        now: float,
    ) -> set[str]:
        """Each event the receiver answered about, but not with a 2xx, waits on its own
        (its own backoff) while the others go on; the keys written."""
        written = set()
        attempts = bundle.attempts + 1
        for event, answer in rejected:
            log.error(
                "webhook receiver rejected event %s (%s): %s", event.id, event.type, answer.detail
            )
            alone = len(bundle.events) == 1  # already on its own: the same key again
            name = parsed.bundle if alone else f"{parsed.bundle}-{event.id[4:16]}"
            delay = max(_delay(attempts), answer.retry_after or 0.0)
            held = Bundle((event,), attempts, now + delay, answer.detail)
            key = BundleKey(PENDING, name, 1).key
            self.store.put(key, held.encode())
            self._due[key] = held.next_try
            written.add(key)
        return written

    def _set_aside(self, parsed: BundleKey, events: tuple[WebhookEvent, ...], reason: str) -> None:
        log.error("webhook bundle %s set aside: %s", parsed.key, reason)
        self._write_failed(parsed.bundle, Bundle(events, error=reason))
        self.store.delete(parsed.key)

    def _set_aside_unread(self, parsed: BundleKey, reason: str) -> None:
        """A bundle that cannot be read: moved whole to ``failed/`` as it is."""
        log.error("webhook bundle %s unreadable, set aside: %s", parsed.key, reason)
        self.store.move(parsed.key, BundleKey(FAILED, parsed.bundle, parsed.count).key)

    def _write_failed(self, bundle_id: str, bundle: Bundle) -> None:
        self.store.put(BundleKey(FAILED, bundle_id, len(bundle.events)).key, bundle.encode())
