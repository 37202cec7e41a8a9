"""A Django view that receives mailspool's webhooks: ``@webhook_view`` checks each
delivery (``mailspool.webhooks.verify``) and calls the view with the event.

```python
from mailspool.integrations.django_webhooks import webhook_view

@webhook_view
def mail_events(request, event):
    if not Seen.objects.filter(id=event.id).exists():  # at least once: drop duplicates
        ...
    return HttpResponse(status=204)
```
The secret is ``MAILSPOOL["WEBHOOK_SECRET"]`` (or ``MAILSPOOL_WEBHOOK_SECRET``), unless
``@webhook_view(secret=...)`` gives one. A delivery that does not verify is answered
400 and the view is not called; the view is exempt from CSRF (the signature replaces it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, overload

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from mailspool.errors import ConfigurationError, WebhookRefused
from mailspool.integrations.django import load_settings
from mailspool.webhooks.events import WebhookEvent
from mailspool.webhooks.verify import verify

__all__ = ["webhook_view"]

EventView = Callable[..., HttpResponse]


@overload
def webhook_view(view: EventView, /) -> Callable[..., HttpResponse]: ...
@overload
def webhook_view(
    *, secret: str | None = None
) -> Callable[[EventView], Callable[..., HttpResponse]]: ...


def webhook_view(view: EventView | None = None, /, *, secret: str | None = None) -> Any:
    """``@webhook_view`` or ``@webhook_view(secret="whsec_...")``: see the module."""

    def decorate(inner: EventView) -> Callable[..., HttpResponse]:
        @functools.wraps(inner)
        def receive(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            try:
                event: WebhookEvent = verify(request.body, request.headers, _secret(secret))
            except WebhookRefused as err:
                return HttpResponseBadRequest(str(err), content_type="text/plain")
            return inner(request, event, *args, **kwargs)

        return csrf_exempt(receive)

    return decorate(view) if view is not None else decorate


def _secret(given: str | None) -> str:
    secret = given or load_settings().webhook_secret
    if not secret:
        raise ConfigurationError("webhook_view needs MAILSPOOL['WEBHOOK_SECRET'] or secret=")
    return secret
