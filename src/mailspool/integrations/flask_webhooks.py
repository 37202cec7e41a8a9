"""Receiving mailspool's webhooks in Flask: ``webhook_event()`` checks the request
being handled (``mailspool.webhooks.verify``) and returns its event, or aborts with 400.

```python
from mailspool.integrations.flask_webhooks import webhook_event

@app.post("/mail-events")
def mail_events():
    event = webhook_event()  # at least once: drop an event.id already seen
    ...
    return "", 204
```
The secret is ``app.config["MAILSPOOL_WEBHOOK_SECRET"]`` (or the environment's) unless
``webhook_event(secret=...)`` gives one.
"""

from __future__ import annotations

from flask import abort, current_app, request

from mailspool.errors import ConfigurationError, WebhookRefused
from mailspool.integrations.flask_settings import load_settings
from mailspool.webhooks.events import WebhookEvent
from mailspool.webhooks.verify import LARGEST_BODY, verify

__all__ = ["webhook_event"]


def webhook_event(secret: str | None = None) -> WebhookEvent:
    """The current request's verified event; ``abort(400)`` when it does not verify."""
    secret = secret or load_settings(current_app.config).webhook_secret
    if not secret:
        raise ConfigurationError("webhook_event needs MAILSPOOL_WEBHOOK_SECRET or secret=")
    if (request.content_length or 0) > LARGEST_BODY:
        abort(413)
    try:
        return verify(request.get_data(cache=True), dict(request.headers), secret)
    except WebhookRefused as err:
        abort(400, description=str(err))
