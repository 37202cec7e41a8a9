"""The dashboard: one handler from ``Request`` to ``Response``, served as ASGI or WSGI.

    app = Dashboard(store, token=None).asgi()      # uvicorn, or mounted in any ASGI app
    app = Dashboard(store).wsgi()                  # Flask (DispatcherMiddleware), WSGI

Every request must name an allowed host (``security.AllowedHosts``: loopback names
and the ``allowed_hosts`` setting), else it gets a 400 whatever its path. Pages are
GETs; every change (retry, suppress, remove) is a POST checked by ``security.Guard``. The public endpoints (``POST /events/ses`` and ``/unsubscribe``)
come from ``mailspool.feedback`` and need neither token nor CSRF token: they check
their own signatures and tokens.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jinja2 import Environment, PackageLoader, select_autoescape

from mailspool.config import Settings
from mailspool.errors import KeyNotFound
from mailspool.feedback.endpoints import SES_PATH, UNSUBSCRIBE_PATH
from mailspool.feedback.settings import endpoints_from_settings
from mailspool.ops.status import collect_status
from mailspool.ops.tenants import RecentTenants
from mailspool.spool.pauses import describe_pause, read_pauses
from mailspool.spool.quota_record import read_quota
from mailspool.stores.base import Store
from mailspool.web import feedback_pages, metrics, views
from mailspool.web.changes import CHANGES, Change
from mailspool.web.http import Handler, Request, Response, asgi_app, wsgi_app
from mailspool.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    TOKEN_COOKIE,
    AllowedHosts,
    Guard,
    secure_headers,
)
from mailspool.webhooks.outbox import outbox_stats

__all__ = ["Dashboard"]

log = logging.getLogger("mailspool.web")
_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class _Page:
    """What a page handler returns: a template and its values, or a ready response."""

    template: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    response: Response | None = None


class Dashboard:
    """The operator's view of one store; see the module doc."""

    def __init__(
        self,
        store: Store,
        *,
        token: str | None = None,
        show_bodies: bool = False,
        public: dict[str, Handler] | None = None,
        settings: Settings | None = None,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        """``token`` None: the ``serve_token`` setting (``MAILSPOOL_SERVE_TOKEN``);
        ``allowed_hosts`` None: the ``allowed_hosts`` setting (``MAILSPOOL_ALLOWED_HOSTS``),
        names served beside the loopback names (``["*"]``: any, the host application
        checks them)."""
        self.store = store
        self.settings = settings or Settings.load()
        given = self.settings.allowed_hosts if allowed_hosts is None else allowed_hosts
        hosts = AllowedHosts(_served_names(given, self.settings))
        self.guard = Guard(token if token is not None else self.settings.serve_token, hosts=hosts)
        self.rates = metrics.RecentRates(store, sends=self.settings.rate_sends)
        self.tenants = RecentTenants(store)  # every batch file on record: kept a minute
        self.show_bodies = show_bodies
        self.public = dict(
            public if public is not None else _feedback_endpoints(store, self.settings)
        )
        self._templates = Environment(
            loader=PackageLoader("mailspool.web", "templates"),
            autoescape=select_autoescape(default=True),
        )
        self._pages: dict[tuple[str, str], Callable[[Request], _Page]] = {
            ("GET", "/"): self._overview,
            ("GET", "/batches"): self._batches,
            ("GET", "/failed"): self._failed,
            ("GET", "/quarantine"): self._quarantine,
            ("GET", "/quarantine/download"): self._download,
            ("GET", "/suppression"): self._suppression,
            ("GET", "/trace"): self._trace,
            ("GET", "/login"): lambda request: _Page("login.html"),
        }
        for path, change in CHANGES.items():
            self._pages["POST", path] = functools.partial(self._change, change)

    def asgi(self) -> Any:
        return asgi_app(self.handle)

    def wsgi(self) -> Any:
        return wsgi_app(self.handle)

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises."""
        try:
            return secure_headers(self._route(request))
        except Exception:
            log.exception("%s %s", request.method, request.path)
            return secure_headers(Response(500, b"internal error; see the server's log", _TEXT))

    def _route(self, request: Request) -> Response:
        misdirected = self.guard.hosts.why_refused(request)
        if misdirected is not None:
            return _refused(400, misdirected)
        public = self.public.get(request.path)
        if public is not None:
            return public(request)
        if request.path == "/static/style.css":
            return _stylesheet()
        if request.method == "POST" and request.path == "/login":
            return self._login(request)
        if request.path != "/login" and not self.guard.authorised(request):
            in_browser = request.method == "GET" and request.path != "/metrics"
            return _redirect(request, "/login") if in_browser else _refused(401)
        if request.path == "/metrics" and request.method == "GET":
            return Response(
                200,
                metrics.render_metrics(self.store, self.rates),
                metrics.CONTENT_TYPE,
            )
        page = self._pages.get((request.method, request.path))
        if page is None:
            known = any(path == request.path for _, path in self._pages)
            return _refused(405 if known else 404)
        try:
            return self._render(request, page(request))
        except KeyNotFound as err:
            return _refused(404, str(err))
        except ValueError as err:  # a bad address, reason or Message-ID: say which
            return _refused(400, str(err))

    def _render(self, request: Request, page: _Page) -> Response:
        if page.response is not None:
            return page.response
        browser, new = self.guard.browser_id(request)
        values = {
            "root": request.root,
            "csrf_field": CSRF_FIELD,
            "csrf_token": self.guard.csrf_token(browser),
            "token_required": self.guard.token is not None,
            # the sign-in page names no store: who sees it has not shown the token yet
            "store_url": "" if page.template == "login.html" else shown_url(self.store.url),
            **page.values,
        }
        body = self._templates.get_template(page.template).render(values).encode()
        response = Response(200, body)
        if new:
            response.headers.append(("set-cookie", _cookie(request, CSRF_COOKIE, browser)))
        return response

    # -- pages -------------------------------------------------------------------------

    def _overview(self, request: Request) -> _Page:
        now = time.time()
        status = collect_status(self.store, now=now)
        rates = self.rates.get()
        counts = {**status.as_dict(), **rates.as_dict()}
        return _Page(
            "overview.html",
            {
                "status": status,
                "counts": counts,
                "states": [*metrics.EMAIL_STATES, "suppressed"],
                "series": views.per_minute(self.store, now=now),
                "bounce_level": rates.BOUNCE_REVIEW,
                "complaint_level": rates.COMPLAINT_REVIEW,
                "pauses": read_pauses(self.store),
                "describe_pause": describe_pause,
                "outbox": outbox_stats(self.store, now=now),
                "quota": read_quota(self.store),
                "tenants": self.tenants.get(),
            },
        )

    def _batches(self, request: Request) -> _Page:
        batches = views.queued_batches(self.store)
        return _Page("batches.html", {"batches": batches, "now": time.time()})

    def _failed(self, request: Request) -> _Page:
        rows = views.failed_rows(self.store, show_bodies=self.show_bodies)
        return _Page("failed.html", {"rows": rows, "show_bodies": self.show_bodies})

    def _quarantine(self, request: Request) -> _Page:
        return _Page("quarantine.html", {"rows": views.quarantine_rows(self.store)})

    def _suppression(self, request: Request) -> _Page:
        lookup = request.arguments().get("address", "")
        page = feedback_pages.suppression_page(self.store, lookup)
        return _Page("suppression.html", {"page": page, "reasons": feedback_pages.REASONS})

    def _trace(self, request: Request) -> _Page:
        target = request.arguments().get("q", "")
        traces = feedback_pages.find_trace(self.store, target)
        return _Page("trace.html", {"target": target, "traces": [t.as_dict() for t in traces]})

    def _download(self, request: Request) -> _Page:
        name = request.arguments().get("name", "")
        found = views.quarantined_file(self.store, name)
        if found is None:
            return _Page(response=_refused(404))
        safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
        response = (
            Response(200, found, "application/octet-stream")
            if isinstance(found, bytes)
            else Response(200, content_type="application/octet-stream", stream=found)
        )
        response.headers.append(("content-disposition", f'attachment; filename="{safe}"'))
        return _Page(response=response)

    # -- changes -----------------------------------------------------------------------

    def _change(self, change: Change, request: Request) -> _Page:
        form = request.form()
        why_not = self.guard.change_allowed(request, form)
        if why_not is not None:
            log.warning("refused %s %s: %s", request.method, request.path, why_not)
            return _Page(response=_refused(403, why_not))
        back = change(self.store, form)
        self.rates.forget()  # the suppressed count may have changed
        return _Page(response=_redirect(request, back))

    def _login(self, request: Request) -> Response:
        if not self.guard.hosts.origin_allowed(request):
            return _refused(403, "the request does not come from this dashboard")
        given = request.form().get("token", "")
        if not self.guard.token_matches(given):
            return _redirect(request, "/login?failed=1")
        response = _redirect(request, "/")
        response.headers.append(("set-cookie", _cookie(request, TOKEN_COOKIE, given)))
        return response


def _served_names(given: Iterable[str], settings: Settings) -> set[str]:
    """The names given, and the host of the unsubscribe URL: the links in sent e-mails
    name it, so it is a name this application serves."""
    names = set(given)
    unsubscribe = urlsplit(settings.unsubscribe_url).hostname if settings.unsubscribe_url else None
    if unsubscribe:
        names.add(unsubscribe)
    return names


def _feedback_endpoints(store: Store, settings: Settings) -> dict[str, Handler]:
    """``POST /events/ses`` and the unsubscribe endpoint of ``mailspool.feedback``,
    configured by its settings (a part not configured answers 404)."""
    endpoints = endpoints_from_settings(settings, store=store)

    def handle(request: Request) -> Response:
        answer = endpoints.handle(
            request.method, request.path, request.query, request.headers, request.body
        )
        headers = [(name.lower(), value) for name, value in answer.headers]
        content_type = dict(headers).get("content-type", _TEXT)
        rest = [(name, value) for name, value in headers if name != "content-type"]
        return Response(answer.status, answer.body, content_type, rest)

    return {SES_PATH: handle, UNSUBSCRIBE_PATH: handle}


def _cookie(request: Request, name: str, value: str) -> str:
    secure = "; Secure" if request.scheme == "https" else ""
    return f"{name}={value}; Path={request.root or '/'}; HttpOnly; SameSite=Strict{secure}"


def _redirect(request: Request, path: str) -> Response:
    return Response(303, b"", _TEXT, [("location", f"{request.root}{path}")])


def _refused(status: int, why: str = "") -> Response:
    from http import HTTPStatus

    text = why or HTTPStatus(status).phrase
    return Response(status, f"{status} {text}\n".encode(), _TEXT)


def _stylesheet() -> Response:
    css = resources.files("mailspool.web").joinpath("static/style.css").read_bytes()
    return Response(200, css, "text/css; charset=utf-8")


def shown_url(url: str) -> str:
    """The store's URL as every page shows it: a password in it replaced by ``***``, and
    an unreadable one cut to what follows its last ``@``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.rsplit("@", 1)[-1]
    if password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hostinfo}"))
