"""The SMTP transport's URL and keywords: ``smtp://`` and ``smtps://`` URLs parsed into
constructor keywords, the settings checked, the TLS context made."""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any
from urllib.parse import unquote

from mailspool.errors import ConfigurationError
from mailspool.transports._common import parse_bool, query_parameters, redact, split_url

__all__ = [
    "STARTTLS_MODES",
    "URL_PARAMETERS",
    "TLSContext",
    "check_settings",
    "host_in_url",
    "make_ssl_context",
    "typed_parameters",
    "url_arguments",
]

log = logging.getLogger("mailspool.transports.smtp")

URL_PARAMETERS = frozenset(
    {
        "cafile",
        "local_hostname",
        "max_connections",
        "pipelining",
        "chunking",
        "event_loop",
        "starttls",
        "timeout",
        "verify",
    }
)
STARTTLS_MODES = frozenset({"auto", "always", "never"})


def make_ssl_context(verify: bool, cafile: str | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as err:
        raise ConfigurationError(f"cannot load cafile {cafile!r}: {err}") from err
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class TLSContext:
    """A transport's TLS context, made when a connection first needs it: the system's CA
    certificates take about 30 ms to load, which a worker whose server offers no STARTTLS
    need not pay at each start. A ``cafile`` is loaded at once, so that a wrong one is
    refused as a setting, before anything is sent."""

    def __init__(self, given: ssl.SSLContext | None, verify: bool, cafile: str | None) -> None:
        if given is None and cafile is not None:
            given = make_ssl_context(verify, cafile)
        self._context = given
        self._verify = verify
        self._lock = threading.Lock()

    def get(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                self._context = make_ssl_context(self._verify, None)
            return self._context


def check_settings(
    host: str,
    username: str | None,
    password: str | None,
    implicit_tls: bool,
    starttls: str | None,
) -> None:
    if not host:
        raise ConfigurationError("the SMTP transport needs a host")
    if starttls is not None and starttls not in STARTTLS_MODES:
        raise ConfigurationError(
            f"starttls must be one of {', '.join(sorted(STARTTLS_MODES))}, not {starttls!r}"
        )
    if implicit_tls and starttls is not None:
        raise ConfigurationError("starttls does not apply to smtps://, which is TLS from the start")
    if password is not None and not username:
        raise ConfigurationError("an SMTP password was given without a user name")
    if not (username or "").isascii() or not (password or "").isascii():
        raise ConfigurationError("the SMTP user name and password must be ASCII (smtplib's AUTH)")


def url_arguments(url: str) -> dict[str, Any]:
    """Constructor keywords from an ``smtp://`` or ``smtps://`` URL."""
    parts = split_url(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigurationError(f"not an SMTP URL (smtp:// or smtps://): {redact(url)!r}")
    if not parts.hostname:
        raise ConfigurationError(f"no host in SMTP URL {redact(url)!r}")
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigurationError(f"an SMTP URL has no path or fragment: {redact(url)!r}")
    arguments: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port,
        "implicit_tls": parts.scheme == "smtps",
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
    }
    query = query_parameters(url, parts.query, URL_PARAMETERS)
    arguments.update(typed_parameters(query))
    return arguments


def typed_parameters(query: dict[str, str]) -> dict[str, Any]:
    typed: dict[str, Any] = dict(query)
    for name, kind in (("timeout", float), ("max_connections", int)):
        if name in query:
            try:
                typed[name] = kind(query[name])
            except ValueError as err:
                raise ConfigurationError(f"{name} must be a number, not {query[name]!r}") from err
    if typed.pop("event_loop", None) is not None:
        log.warning("the SMTP URL option event_loop is no longer used; leave it out")
    for name in ("verify", "pipelining", "chunking"):
        if name in query:
            typed[name] = parse_bool(name, query[name])
    return typed


def host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
