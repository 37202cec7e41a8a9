"""The dashboard in a Django project::

    urlpatterns = [..., path("ops/mail/", include("mailspool.integrations.django_dashboard"))]

The store and the token come from ``settings.MAILSPOOL`` (``STORE``, ``SERVE_TOKEN``),
then the environment, read on the first request. The dashboard checks its own CSRF
token and origin on every form (Django's CSRF middleware does not know its forms, so
the view is exempt from it); put it behind the project's own access rules as well.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from mailspool.integrations.django import load_settings
from mailspool.spool.sealed_store import sealed
from mailspool.stores.open_stores import shared_store
from mailspool.web.app import Dashboard
from mailspool.web.http import Request

__all__ = ["urlpatterns", "view"]

_built: list[Dashboard] = []


def _dashboard() -> Dashboard:
    if not _built:
        settings = load_settings()
        # Django checks Host against its ALLOWED_HOSTS (``get_host`` in ``view``)
        _built.append(
            Dashboard(
                sealed(shared_store(settings.store), settings.encryption_key),
                settings=settings,
                allowed_hosts=["*"],
            )
        )
    return _built[0]


@csrf_exempt
def view(request: HttpRequest, path: str = "") -> HttpResponse | StreamingHttpResponse:
    inner = f"/{path}"
    request.get_host()  # DisallowedHost (a 400) for a name not in ALLOWED_HOSTS
    answer = _dashboard().handle(
        Request(
            method=request.method or "GET",
            path=inner,
            query=request.META.get("QUERY_STRING", ""),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=request.body,
            scheme=request.scheme or "http",
            root=request.path[: len(request.path) - len(inner)],
        )
    )
    response: HttpResponse | StreamingHttpResponse
    if answer.stream is not None:  # a download: sent as it is read
        response = StreamingHttpResponse(
            answer.stream, status=answer.status, content_type=answer.content_type
        )
    else:
        response = HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
    for name, value in answer.headers:
        response[name] = value
    return response


urlpatterns = [re_path(r"^(?P<path>.*)$", view, name="mailspool-dashboard")]
