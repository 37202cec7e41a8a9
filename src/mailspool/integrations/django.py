"""Django glue: an e-mail backend and a middleware.

    EMAIL_BACKEND = "mailspool.integrations.django.EmailBackend"
    MIDDLEWARE = ["mailspool.integrations.django.MailspoolMiddleware", ...]
    INSTALLED_APPS += ["mailspool.integrations.django_app"]   # manage.py mailspool_worker
    MAILSPOOL = {"STORE": "s3://bucket/prefix", "PRIORITY_TRANSPORT": "smtp://...", ...}

Every ``django.core.mail`` call (``send_mail``, ``send_mass_mail``, ``EmailMessage.send``,
the password reset form) goes through the backend. It classifies each e-mail like
``mailspool.send_mail`` does (``msg.mailspool_priority``, the header
``X-Mailspool-Priority: now|deferred``, the markers, ``DEFAULT_PRIORITY``), sends
priority mail at once and hands deferred mail to the request's scope, which the
middleware writes to the store when the request ends. Outside a request (management
commands, shell, tasks) a call's deferred e-mails are written when the call returns.

Sending later, expiry and idempotency keys (``mailspool.send_mail``'s ``send_at``,
``expires_at`` and ``key``) come from the e-mail's attributes ``mailspool_send_at``,
``mailspool_expires_at`` (timezone-aware datetimes, or seconds from now) and
``mailspool_key``, or from its headers ``X-Mailspool-Send-At``, ``X-Mailspool-Expires-At``
(seconds from now, or ISO 8601 with an offset) and ``X-Mailspool-Key``, which are taken
off the e-mail. Such an e-mail is written when ``send_messages`` is called (not on
commit), since whether its key was accepted is part of the count it returns; an e-mail
whose key was already accepted is not counted.

It is a drop-in for Django's own backends (Django's ``BaseEmailBackendTests`` run
against it: docs/frameworks.md): lazy strings are resolved wherever Django takes them,
a bare local part (``"django"``) is accepted as Django's SMTP backend accepts it (and
marked, so that only such an e-mail may carry one), and django-anymail's ``msg.tags``
and ``msg.metadata`` travel with the e-mail, as does the SES tenant that sends it
(``msg.tenant``, or the header ``X-Mailspool-Tenant``, which is taken off the e-mail).

Deferred e-mails join the scope when the surrounding database transaction commits
(``transaction.on_commit``) and are dropped when it rolls back, so a failed view never
notifies anyone; ``MAILSPOOL["ON_COMMIT"] = False`` queues them regardless.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings as django_settings
from django.core import checks
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.http import HttpRequest, HttpResponseBase

import mailspool
from mailspool.config import SettingError, Settings
from mailspool.errors import ConfigurationError, InvalidMessage, MailspoolError
from mailspool.headers import PRIORITY_HEADER
from mailspool.integrations.django_message import (
    LATER_HEADERS,
    TENANT_HEADER,
    later_of,
    to_message,
)
from mailspool.message import Message
from mailspool.producer.api import send_message, send_priority
from mailspool.producer.classify import classify
from mailspool.producer.later import Later
from mailspool.producer.scope import current_scope, enqueue

__all__ = [
    "LATER_HEADERS",
    "PRIORITY_HEADER",
    "TENANT_HEADER",
    "EmailBackend",
    "MailspoolMiddleware",
    "check_settings",
    "later_of",
    "load_settings",
    "mailspool_key",
    "setting_problems",
    "to_message",
]

log = logging.getLogger("mailspool")

#: Keys of ``settings.MAILSPOOL`` that only the glue reads; every other key is a setting
#: of ``mailspool.config.Settings`` (``STORE`` is ``MAILSPOOL_STORE``, and so on).
GLUE_KEYS = frozenset({"PRIORITY_BACKEND", "ON_COMMIT", "DATABASE"})
_SELF_PRIORITY = "MAILSPOOL['PRIORITY_BACKEND'] must be another backend"


def _glue(name: str, default: Any = None) -> Any:
    return (getattr(django_settings, "MAILSPOOL", None) or {}).get(name, default)


def load_settings(**explicit: Any) -> Settings:
    """mailspool's settings: ``explicit`` (a command's options), ``settings.MAILSPOOL``,
    then ``MAILSPOOL_*``, then defaults; every value checked, an unknown key refused."""
    return Settings.load(**_sources(), **explicit)


def setting_problems() -> list[ConfigurationError]:
    """Every mistake in ``settings.MAILSPOOL`` and the ``MAILSPOOL_*`` variables, for
    ``manage.py check`` (``mailspool.integrations.django_app``)."""
    try:
        sources = _sources()
    except ConfigurationError as err:
        return [err]
    problems: tuple[ConfigurationError, ...] = ()
    try:
        Settings.load(**sources)
    except SettingError as err:
        problems = err.problems
    return [*problems, *_glue_problems(sources["framework"])]


def mailspool_key(name: str) -> str:
    """A setting's key as written in ``settings.MAILSPOOL``: ``MAILSPOOL['STORE']``."""
    return f"MAILSPOOL[{name.upper()!r}]"


def _sources() -> dict[str, Any]:
    conf = getattr(django_settings, "MAILSPOOL", None) or {}
    if not isinstance(conf, Mapping):
        raise ConfigurationError(f"settings.MAILSPOOL must be a dict, got a {type(conf).__name__}")
    return {
        "framework": {str(key).lower(): value for key, value in conf.items()},
        "framework_key": mailspool_key,
        "glue": frozenset(key.lower() for key in GLUE_KEYS),
    }


def _glue_problems(conf: Mapping[str, Any]) -> list[ConfigurationError]:
    """The keys only the glue reads: ``ON_COMMIT`` a bool, the others text."""
    problems: list[ConfigurationError] = []
    on_commit = conf.get("on_commit", True)
    if not isinstance(on_commit, bool):
        problems.append(
            ConfigurationError(
                f"{mailspool_key('on_commit')} must be True or False, got {on_commit!r}"
            )
        )
    for name in ("priority_backend", "database"):
        value = conf.get(name)
        if value is not None and not (isinstance(value, str) and value.strip()):
            problems.append(
                ConfigurationError(f"{mailspool_key(name)} must be non-empty text, got {value!r}")
            )
    if conf.get("priority_backend") == f"{__name__}.EmailBackend":
        problems.append(ConfigurationError(_SELF_PRIORITY))
    return problems


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The system check the mailspool app registers: a bad key or value of
    ``settings.MAILSPOOL`` (or a ``MAILSPOOL_*`` variable) fails ``manage.py check``
    and the server's start, not the first request that sends an e-mail."""
    errors: list[checks.CheckMessage] = []
    for problem in setting_problems():
        text, hint = str(problem), getattr(problem, "hint", "see docs/configuration.md")
        text = text.removesuffix(f"; {hint}")  # said once, as the hint
        errors.append(checks.Error(text, hint=hint, obj="settings.MAILSPOOL", id="mailspool.E001"))
    return errors


# -- the backend ----------------------------------------------------------------------------------


class EmailBackend(BaseEmailBackend):
    """Priority e-mail now, the rest through the request scope (see the module doc).

    ``fail_silently`` hides delivery and store failures only: a configuration error
    (a bad setting, a bad priority backend) always raises.
    """

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        """Send or queue every e-mail; return how many were sent or queued."""
        if not email_messages:
            return 0
        scope = current_scope()  # in a request: the settings the middleware loaded
        settings = scope.settings if scope is not None else load_settings()
        deferred: list[Message] = []
        sent = 0
        for email in email_messages:
            if not email.recipients():
                continue
            message, is_priority = self._classify(email, settings)
            later = later_of(email)
            if later:
                sent += self._send_later(message, is_priority, later, settings)
            elif not is_priority:
                deferred.append(message)
            elif self._send_priority(email, message, settings):
                sent += 1
        if deferred:
            self._defer(deferred, settings)
        return sent + len(deferred)

    def _classify(self, email: EmailMessage, settings: Settings) -> tuple[Message, bool]:
        message, header = to_message(email)
        decision = classify(
            to=message.to,
            subject=message.subject,
            priority=getattr(email, "mailspool_priority", None),
            header=header,
            subject_marker=settings.subject_marker,
            marker_recipient=settings.marker_recipient,
            default=settings.default_priority,
        )
        if decision.to != message.to or decision.subject != message.subject:
            message = _replace(message, to=decision.to, subject=decision.subject)
        return message, decision.priority

    def _send_later(
        self, message: Message, is_priority: bool, later: Later, settings: Settings
    ) -> int:
        """1 when sent or queued now, 0 when its key was already accepted (or, with
        ``fail_silently``, when the store failed)."""
        try:
            return int(send_message(message, priority=is_priority, settings=settings, later=later))
        except MailspoolError as err:
            if isinstance(err, ConfigurationError | InvalidMessage) or not self.fail_silently:
                raise
            log.error("e-mail not written (fail_silently): %s", err)
            return 0

    def _send_priority(self, email: EmailMessage, message: Message, settings: Settings) -> bool:
        backend = _glue("PRIORITY_BACKEND")
        try:
            if backend:
                return self._send_through(backend, email, message) == 1
            send_priority(message, settings=settings)  # an outage queues it at the front
            return True
        except ConfigurationError:
            raise
        except Exception:
            if not self.fail_silently:
                raise
            log.exception("priority e-mail not sent (fail_silently)")
            return False

    def _send_through(self, backend: str, email: EmailMessage, message: Message) -> int:
        if backend == f"{__name__}.EmailBackend":
            raise ConfigurationError(_SELF_PRIORITY)
        copy = EmailMessage(
            subject=message.subject,
            body=email.body,
            from_email=email.from_email,
            to=list(message.to),
            cc=email.cc,
            bcc=email.bcc,
            reply_to=email.reply_to,
            headers={k: v for k, v in email.extra_headers.items() if k != PRIORITY_HEADER},
            attachments=email.attachments,
        )
        copy.content_subtype = email.content_subtype
        copy.encoding = email.encoding
        if hasattr(email, "alternatives"):
            copy.alternatives = list(email.alternatives)  # type: ignore[attr-defined]
        for name in ("tags", "metadata"):  # django-anymail's, for an anymail priority backend
            if hasattr(email, name):
                setattr(copy, name, getattr(email, name))
        connection = get_connection(backend, fail_silently=self.fail_silently)
        return int(connection.send_messages([copy]) or 0)

    def _defer(self, messages: list[Message], settings: Settings) -> None:
        def queue() -> None:
            _queue(messages, settings, self.fail_silently)

        if _glue("ON_COMMIT", True):
            transaction.on_commit(queue, using=_glue("DATABASE"))
        else:
            queue()


def _queue(messages: list[Message], settings: Settings, fail_silently: bool) -> None:
    """Into the running request's scope, or written now (with the fallback) outside one."""
    try:
        enqueue(messages, settings)
    except MailspoolError as err:
        if isinstance(err, ConfigurationError) or not fail_silently:
            raise
        log.error("deferred e-mails not written (fail_silently): %s", err)


def _replace(message: Message, **changes: Any) -> Message:
    from dataclasses import replace

    return replace(message, **changes)


# -- the middleware -------------------------------------------------------------------------------


class MailspoolMiddleware:
    """One mailspool request scope per Django request, sync or async.

    The scope is written when the response has been produced (before it is sent), so the
    client's answer means the e-mails are stored. Put it first in ``MIDDLEWARE`` so that
    mail sent by other middleware joins the scope too.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        load_settings()  # a mistake fails the server's start, not its first request
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response) or inspect.iscoroutinefunction(
            get_response
        )
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        with mailspool.request(settings=load_settings()) as scope:
            response: HttpResponseBase = self.get_response(request)
            scope.respond(response.status_code)  # a view that raised is a 500 here
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        async with mailspool.request(settings=load_settings()) as scope:
            response: HttpResponseBase = await self.get_response(request)
            scope.respond(response.status_code)
        return response
