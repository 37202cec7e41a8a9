"""Django signals for SES events, sent once per event by the installed app's hook."""

from __future__ import annotations

from typing import Any

from tests import django_settings

django_settings.configure()

from mailspool.feedback.events import FeedbackEvent, parse_ses_event  # noqa: E402
from mailspool.feedback.ingest import ingest  # noqa: E402
from mailspool.integrations import django_signals  # noqa: E402
from mailspool.stores.memory import MemoryStore  # noqa: E402
from tests import ses_events  # noqa: E402


def test_each_kind_sends_its_signal_and_event_received_once() -> None:
    received: dict[str, list[FeedbackEvent]] = {"all": [], "bounce": [], "complaint": []}

    def on_all(sender: Any, event: FeedbackEvent, **kwargs: Any) -> None:
        received["all"].append(event)

    def on_bounce(sender: Any, event: FeedbackEvent, **kwargs: Any) -> None:
        received["bounce"].append(event)

    def on_complaint(sender: Any, event: FeedbackEvent, **kwargs: Any) -> None:
        received["complaint"].append(event)

    django_signals.event_received.connect(on_all)
    django_signals.bounce_received.connect(on_bounce)
    django_signals.complaint_received.connect(on_complaint)
    try:
        bounce = parse_ses_event(ses_events.bounce("id-1", "gone@example.com"))
        complaint = parse_ses_event(ses_events.complaint("id-2", "angry@example.com"))
        ingest(MemoryStore(), [bounce, complaint, bounce])  # the bounce twice: one signal
    finally:
        django_signals.event_received.disconnect(on_all)
        django_signals.bounce_received.disconnect(on_bounce)
        django_signals.complaint_received.disconnect(on_complaint)
    assert received == {"all": [bounce, complaint], "bounce": [bounce], "complaint": [complaint]}
