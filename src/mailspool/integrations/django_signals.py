"""Django signals for SES events (``INSTALLED_APPS += ["mailspool.integrations.django_app"]``).

Each receiver gets ``sender=FeedbackEvent`` and ``event=`` the ``FeedbackEvent``::

    from django.dispatch import receiver
    from mailspool.integrations.django_signals import bounce_received

    @receiver(bounce_received)
    def flag_address(sender, event, **kwargs):
        if event.permanent:
            User.objects.filter(email__in=event.recipients).update(email_bounced=True)

``event_received`` is sent for every event; the others for their kind only. They are
sent once per event, in the process that ingests it (the Lambda function, ``mailspool
events ingest``, or the web process behind ``POST /events/ses``).
"""

from __future__ import annotations

from django.dispatch import Signal

from mailspool.feedback.events import EventKind, FeedbackEvent

__all__ = [
    "bounce_received",
    "complaint_received",
    "delivery_received",
    "event_received",
    "send_signals",
]

event_received = Signal()
bounce_received = Signal()
complaint_received = Signal()
delivery_received = Signal()

_BY_KIND = {
    EventKind.BOUNCED: bounce_received,
    EventKind.COMPLAINED: complaint_received,
    EventKind.DELIVERED: delivery_received,
}


def send_signals(event: FeedbackEvent) -> None:
    """The hook the app registers: ``event_received``, then the kind's own signal."""
    event_received.send(sender=FeedbackEvent, event=event)
    specific = _BY_KIND.get(event.kind)
    if specific is not None:
        specific.send(sender=FeedbackEvent, event=event)
