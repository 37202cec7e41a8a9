"""The steps around each send: one ordered list a worker runs for every e-mail, as
dramatiq's middleware or django-anymail's base backend run theirs.

Before an e-mail goes, each step in turn may change it or refuse it (``prepare``: the
suppression screen takes suppressed recipients off, the unsubscribe step adds its
headers); a refusal fails that e-mail for good with the step's reason. After each call
to the transport every step sees the answers (``answered``: metrics, the throttle
count of the Lambda handler), and after each outcome is in the ledger, the outcome
(``recorded``: a progress bar, a test's callback); once a batch run's outcomes are all
durable, before the batch is finished, the whole run (``concluded``: webhook events).
No step changes how an e-mail is sent:
the one send loop (``batch_run``, ``attempt``) is the same with any list of steps.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from mailspool.errors import DeliveryError, InvalidMessage, TransientError
from mailspool.feedback.suppression import SuppressionList
from mailspool.feedback.unsubscribe import UnsubscribeLinks
from mailspool.feedback.verp import Verp
from mailspool.message import Message
from mailspool.policy.screen import screen
from mailspool.spool.batch import Batch
from mailspool.spool.records import LedgerEntry, LedgerState
from mailspool.transports.base import Receipt
from mailspool.webhook_rules import EventType
from mailspool.webhooks.events import WebhookEvent, email_event, raw_recipients
from mailspool.webhooks.outbox import Outbox

__all__ = [
    "BatchEnd",
    "Call",
    "Draft",
    "OutcomeCallback",
    "OutcomeFunction",
    "Refused",
    "SendResult",
    "SendStep",
    "Steps",
    "SuppressionScreen",
    "ThrottleCount",
    "UnsubscribeHeaders",
    "VerpEnvelope",
    "WebhookEvents",
]

#: What the transport answered for one e-mail.
SendResult = Receipt | DeliveryError | InvalidMessage


@dataclass(frozen=True, slots=True)
class Draft:
    """An e-mail on its way: the message to send, the recipients taken off it, and
    where it comes from (its batch and index; empty for an e-mail of no batch)."""

    message: Message
    suppressed: Mapping[str, str] = field(default_factory=dict)
    batch_id: str = ""
    index: int = 0


@dataclass(frozen=True, slots=True)
class BatchEnd:
    """A batch run at its end: the batch, every outcome in its ledger (earlier runs'
    too) and whether it is finished (else the e-mails with no outcome wait)."""

    batch: Batch
    batch_id: str
    entries: Mapping[int, LedgerEntry]
    finished: bool


class Refused(Exception):
    """A step will not let the e-mail go; ``reason`` is recorded as its failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Call:
    """One call to the transport: how long it took and its answer for each e-mail."""

    seconds: float
    results: Sequence[SendResult]


class SendStep:
    """One step; each hook does nothing unless a step overrides it."""

    def prepare(self, draft: Draft) -> Draft:
        """The e-mail as this step lets it go; raise ``Refused`` to fail it."""
        return draft

    def answered(self, call: Call) -> None:
        """Called from a sender thread after each call to the transport."""

    def recorded(self, batch_id: str, index: int, state: LedgerState) -> None:
        """Called from a sender thread once an e-mail's outcome is in the ledger."""

    def concluded(self, end: BatchEnd) -> None:
        """Called once per batch run, its outcomes durable, before the batch leaves
        ``queue/``: raising keeps it there, to be run (and concluded) again."""


class Steps:
    """The ordered steps of a worker; ``append`` adds one before delivery starts."""

    def __init__(self, steps: Iterable[SendStep] = ()) -> None:
        self._steps = list(steps)

    def __iter__(self) -> Iterator[SendStep]:
        return iter(self._steps)

    def append(self, step: SendStep) -> None:
        self._steps.append(step)

    def prepare(self, message: Message, batch_id: str = "", index: int = 0) -> Draft:
        draft = Draft(message, batch_id=batch_id, index=index)
        for step in self._steps:
            draft = step.prepare(draft)
        return draft

    def answered(self, call: Call) -> None:
        for step in self._steps:
            step.answered(call)

    def recorded(self, batch_id: str, index: int, state: LedgerState) -> None:
        for step in self._steps:
            step.recorded(batch_id, index, state)

    def concluded(self, end: BatchEnd) -> None:
        for step in self._steps:
            step.concluded(end)


class SuppressionScreen(SendStep):
    """Suppressed recipients off the e-mail; none left: the e-mail fails, "suppressed"."""

    def __init__(self, suppressions: SuppressionList) -> None:
        self.suppressions = suppressions

    def prepare(self, draft: Draft) -> Draft:
        screened = screen(draft.message, self.suppressions)
        if screened.message is None:
            raise Refused(screened.reason)
        suppressed = {**draft.suppressed, **screened.suppressed}
        return replace(draft, message=screened.message, suppressed=suppressed)


class UnsubscribeHeaders(SendStep):
    """``List-Unsubscribe`` and ``List-Unsubscribe-Post`` (RFC 8058) on every e-mail."""

    def __init__(self, links: UnsubscribeLinks) -> None:
        self.links = links

    def prepare(self, draft: Draft) -> Draft:
        return replace(draft, message=self.links.add_headers(draft.message))


class VerpEnvelope(SendStep):
    """Each e-mail's envelope sender set to its signed bounce address (VERP,
    ``feedback.verp``); the From header is kept."""

    def __init__(self, verp: Verp) -> None:
        self.verp = verp

    def prepare(self, draft: Draft) -> Draft:
        if not draft.batch_id:
            return draft
        recipients = draft.message.envelope_recipients
        sender = self.verp.envelope_sender(draft.batch_id, draft.index, recipients)
        return replace(draft, message=replace(draft.message, return_path=sender))


#: Called after each e-mail's outcome is recorded: (batch id, e-mail index, state).
OutcomeFunction = Callable[[str, int, LedgerState], None]


class OutcomeCallback(SendStep):
    """A function told of each outcome (the CLI's progress bar, a test)."""

    def __init__(self, function: OutcomeFunction) -> None:
        self.function = function

    def recorded(self, batch_id: str, index: int, state: LedgerState) -> None:
        self.function(batch_id, index, state)


class ThrottleCount(SendStep):
    """Counts the sends the provider answered with a transient error (throttled)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._throttled = 0

    @property
    def throttled(self) -> int:
        with self._lock:
            return self._throttled

    def answered(self, call: Call) -> None:
        count = sum(isinstance(result, TransientError) for result in call.results)
        if count:
            with self._lock:
                self._throttled += count


class WebhookEvents(SendStep):
    """The batch's outcomes as webhook events (sent, failed; deferred for the e-mails
    a run that did not finish leaves waiting), one outbox write per batch run. Every
    outcome in the ledger is written at each run's end, but for those this process
    already wrote: a run after a crash writes them again, under the same ids, so none
    is lost (``webhooks.outbox``)."""

    #: event ids this process wrote, remembered so that a batch run again here (after an
    #: outage) writes only what is new; a new process writes everything again (safe)
    REMEMBERED = 100_000

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._written: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()  # batch threads conclude at once

    def concluded(self, end: BatchEnd) -> None:
        events = self._events(end)
        with self._lock:
            new = [event for event in events if event.id not in self._written]
        self.outbox.add(new)
        with self._lock:
            self._written.update((event.id, None) for event in new)
            while len(self._written) > self.REMEMBERED:
                self._written.popitem(last=False)

    def _events(self, end: BatchEnd) -> list[WebhookEvent]:
        events = []
        for index in range(len(end.batch)):
            entry = end.entries.get(index)
            if entry is None and end.finished:
                continue
            kind = _EVENT_OF.get(entry.state) if entry is not None else EventType.DEFERRED
            if kind is None:  # handed to a continuation: its own batch tells
                continue
            raw = end.batch.raw_email(index)
            events.append(
                email_event(
                    kind,
                    end.batch_id,
                    index,
                    recipients=raw_recipients(raw),
                    refused=entry.refused or {} if entry else {},
                    message_id=entry.message_id if entry else None,
                    reason=entry.reason if entry else "still queued: the batch run ended before it",
                    extra=raw,
                    via=(entry.via, entry.unanswered or ()) if entry else (None, ()),
                )
            )
        return events


_EVENT_OF = {LedgerState.SENT: EventType.SENT, LedgerState.FAILED: EventType.FAILED}
