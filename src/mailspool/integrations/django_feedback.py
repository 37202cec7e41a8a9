"""The feedback endpoints in a Django project::

    urlpatterns = [..., path("mail/", include("mailspool.integrations.django_feedback"))]
    # POST /mail/events/ses (SNS), GET|POST /mail/unsubscribe (one-click)

Settings come from ``settings.MAILSPOOL`` (``SNS_TOPICS``, ``UNSUBSCRIBE_URL``,
``UNSUBSCRIBE_SECRET``...), then the environment, read on the first request. The views
are exempt from CSRF: SNS and mail clients post without a Django session, and each
request proves itself (a signed SNS message, a signed token).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from mailspool.feedback.endpoints import FeedbackEndpoints
from mailspool.feedback.settings import endpoints_from_settings
from mailspool.integrations.django import load_settings

__all__ = ["urlpatterns", "view"]

_built: list[FeedbackEndpoints] = []


def _endpoints() -> FeedbackEndpoints:
    if not _built:
        _built.append(endpoints_from_settings(load_settings()))
    return _built[0]


@csrf_exempt
def view(request: HttpRequest) -> HttpResponse:
    answer = _endpoints().handle(
        request.method or "GET",
        request.path,
        request.META.get("QUERY_STRING", ""),
        {k.lower(): v for k, v in request.headers.items()},
        request.body,
    )
    response = HttpResponse(answer.body, status=answer.status)
    for name, value in answer.headers:
        response[name] = value
    return response


urlpatterns = [
    path("events/ses", view, name="mailspool-ses-events"),
    path("unsubscribe", view, name="mailspool-unsubscribe"),
]
