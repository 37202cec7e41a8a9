"""The deliverer: drains the outbox, oldest bundle first, one signed POST per event.

Run by the worker between batches, by the Lambda handler after its batch, and by
``mailspool webhooks drain``. One drain at a time per store: it holds the claim
``webhooks-outbox`` (a second worker finds it held and leaves the outbox alone).

A bundle is due when its ``next_try`` has come. Its events go in order; delivered
ones leave the bundle, refused ones go to ``webhooks/failed/`` with the answer. On the
first event the receiver does not take (down, busy, timeout), the bundle is written
back with its next try ``retry_delay(attempts)`` ahead (5 s, doubling, at most an hour)
and the drain stops: a receiver that is down gets one request per delay, not one per
event. A bundle older than the retention (``MAILSPOOL_WEBHOOK_RETENTION``) goes to
``webhooks/failed/`` as expired. Delivery is at least once: an event is removed from
the outbox only after its 2xx, so a crash in between sends it again, under the same id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from mailspool.errors import InvalidRecord, KeyNotFound, LeaseLost, ObjectRefused
from mailspool.spool import layout
from mailspool.stores.base import Store, default_owner
from mailspool.webhooks.events import WebhookEvent
from mailspool.webhooks.http import Outcome, Receiver
from mailspool.webhooks.outbox import FAILED, PENDING, Bundle, BundleKey, bundle_keys

__all__ = ["Deliverer", "DrainReport", "retry_delay"]

log = logging.getLogger("mailspool.webhooks")

CLAIM = "webhooks-outbox"
_CLAIM_TTL = 300.0
_FIRST_DELAY = 5.0
_LONGEST_DELAY = 3600.0
#: largest bundle object read; a larger one is set aside unread
BUNDLE_BYTES = 32 * 1024 * 1024


def retry_delay(attempts: int) -> float:
    """Seconds before the next try of a bundle that failed ``attempts`` times."""
    return min(_FIRST_DELAY * float(2 ** max(min(attempts, 30) - 1, 0)), _LONGEST_DELAY)


@dataclass(slots=True)
class DrainReport:
    """What one drain did: events delivered, refused (set aside), expired, and whether
    it stopped on a receiver that did not answer (``waiting``: its reason)."""

    delivered: int = 0
    refused: int = 0
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

    def drain(self, *, stop: Callable[[], bool] | None = None) -> DrainReport:
        """Deliver every due bundle until the receiver stops answering (after it did
        not, nothing is tried here until that bundle's next try), or ``stop()`` says
        so before a bundle (the Lambda handler's deadline)."""
        report = DrainReport()
        if self.clock() < self._quiet_until:
            report.waiting = "waiting for the receiver's next try"
            return report
        pending = list(bundle_keys(self.store, PENDING))
        if not pending:  # the usual case: no claim taken (a write, on S3)
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
        refused: list[tuple[WebhookEvent, str]] = []
        for number, event in enumerate(bundle.events):
            answer = self.receiver.post(event)
            if answer.outcome is Outcome.DELIVERED:
                report.delivered += 1
            elif answer.outcome is Outcome.REFUSED:
                refused.append((event, answer.detail))
            else:
                self._postpone(parsed, bundle, number, refused, answer.detail, now)
                report.refused += len(refused)
                report.waiting = answer.detail
                return False
        self._refuse(parsed, refused)
        for entry, why in bundle.unreadable:
            log.warning(
                "webhook bundle %s: an entry set aside unsent: %s (%r)", parsed.key, why, entry
            )
        report.refused += len(refused)
        self.store.delete(parsed.key)
        return True

    def _postpone(
        self,
        parsed: BundleKey,
        bundle: Bundle,
        first_left: int,
        refused: list[tuple[WebhookEvent, str]],
        error: str,
        now: float,
    ) -> None:
        """Write back the events not yet taken, with the next try, then drop the old key."""
        self._refuse(parsed, refused)
        attempts = bundle.attempts + 1
        rest = replace(
            bundle,
            events=bundle.events[first_left:],
            attempts=attempts,
            next_try=now + retry_delay(attempts),
            error=error,
        )
        moved = BundleKey(PENDING, parsed.bundle, len(rest.events))
        self.store.put(moved.key, rest.encode())
        self._quiet_until = rest.next_try
        if moved.key != parsed.key:
            self.store.delete(parsed.key)
        log.warning(
            "webhook receiver did not take event %s: %s; %d event(s) wait, next try in %g s",
            rest.events[0].id,
            error,
            len(rest.events),
            retry_delay(attempts),
        )

    def _refuse(self, parsed: BundleKey, refused: list[tuple[WebhookEvent, str]]) -> None:
        for event, detail in refused:
            log.error("webhook receiver refused event %s (%s): %s", event.id, event.type, detail)
        if refused:
            errors = "; ".join(sorted({detail for _, detail in refused}))
            events = tuple(event for event, _ in refused)
            # named after its first event: refusals of one bundle in two drains differ
            self._write_failed(
                f"{parsed.bundle}-{events[0].id[4:16]}", Bundle(events, error=errors)
            )

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
