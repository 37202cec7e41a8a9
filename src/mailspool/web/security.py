"""What keeps the dashboard safe by default.

- Binding: a non-loopback address needs a token (``require_token_for``).
- Access: with a token set, every page but the public endpoints needs it, as
  ``Authorization: Bearer <token>`` (Prometheus, scripts) or the cookie that the
  ``/login`` form sets (a browser).
- Names (``AllowedHosts``): every request, GET included, must name in ``Host`` a name
  the dashboard serves: a loopback name (``localhost``, ``127.0.0.1``, ``[::1]``, any
  port) or one of the ``allowed_hosts`` setting (``MAILSPOOL_ALLOWED_HOSTS``,
  ``--allowed-host``); any other is answered 400. This is what stops DNS rebinding: a
  page of ``evil.example`` whose name now resolves to 127.0.0.1 still sends
  ``Host: evil.example``. ``*`` leaves the check to the application the dashboard is
  mounted in (Django checks its own ``ALLOWED_HOSTS``).
- Changes of state are POSTs that carry a CSRF token and come from an allowed origin:
  the token is an HMAC of a random per-browser value kept in a cookie (double submit,
  signed with a secret of this process); the ``Origin`` (or ``Referer``) must name one
  of the allowed names, not merely the ``Host`` the request claims (with ``*``: that
  ``Host``, which the application around has checked).
- Every response forbids framing, inline scripts and styles and sniffing (CSP and the
  usual headers).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from mailspool.errors import ConfigurationError
from mailspool.web.http import Request, Response

__all__ = [
    "ANY_HOST",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "TOKEN_COOKIE",
    "AllowedHosts",
    "Guard",
    "is_loopback",
    "require_token_for",
    "secure_headers",
]

CSRF_COOKIE = "mailspool_csrf"
CSRF_FIELD = "csrf_token"
TOKEN_COOKIE = "mailspool_token"  # noqa: S105 - a cookie name, not a secret
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
#: In ``allowed_hosts``: any name (the application the dashboard is mounted in checks it).
ANY_HOST = "*"
_LONGEST_HOST = 255


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(netloc: str) -> str | None:
    """The name in a ``Host`` header or an origin's ``host[:port]``, lower-case, without
    its port or a final dot (``[::1]`` keeps its brackets); None if it is malformed."""
    text = netloc.strip().lower()
    if not text or len(text) > _LONGEST_HOST or not text.isascii():
        return None
    if text.startswith("["):
        name, bracket, port = text[1:].partition("]")
        name, rest = f"[{name}]", port
        if not bracket:
            return None
    else:
        name, colon, port = text.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and 1 < len(rest) <= 6 and rest[1:].isdigit()):
        return None
    name = name.removesuffix(".")
    if not name or any(c in name for c in "/\\@?#%, \t"):
        return None
    return name


class AllowedHosts:
    """The names the dashboard answers to: loopback names always, plus ``names``
    (names or addresses, any port; ``*``: any name)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        cleaned = {_entry(name) for name in names if name.strip()}
        self.any = ANY_HOST in cleaned
        self.names = frozenset(name for name in cleaned if name is not None)

    def allows(self, netloc: str) -> bool:
        """True if the ``Host`` header (``name[:port]``) names this dashboard."""
        if self.any:
            return bool(netloc.strip())
        name = host_name(netloc)
        return name is not None and (name in self.names or is_loopback(name))

    def why_refused(self, request: Request) -> str | None:
        """None if the request's ``Host`` is allowed, else why not (for a 400). No
        ``Host`` at all (HTTP/1.0, a direct call) is let through: a browser always sends
        one, and rebinding works only through a browser."""
        given = request.header("host")
        if not given or self.allows(given):
            return None
        shown = given[:100].encode("ascii", "backslashreplace").decode()
        return (
            f"the Host header names {shown!r}, which this dashboard does not serve; "
            "it answers to loopback names and MAILSPOOL_ALLOWED_HOSTS (--allowed-host)"
        )

    def origin_allowed(self, request: Request) -> bool:
        """The browser says the request comes from a page of an allowed name (``Origin``,
        else ``Referer``); with ``*``, of the host the request was sent to."""
        source = request.header("origin") or request.header("referer")
        if not source or source == "null":
            return False
        try:
            parts = urlsplit(source)
            user = parts.username
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or user is not None:
            return False
        if self.any:
            return bool(parts.netloc) and parts.netloc == request.header("host")
        return self.allows(parts.netloc)


def _entry(name: str) -> str | None:
    """A name of the setting as ``host_name`` gives it (``2001:db8::1`` gets brackets)."""
    text = name.strip().lower()
    if text == ANY_HOST:
        return ANY_HOST
    if text.count(":") > 1 and not text.startswith("["):
        text = f"[{text}]"
    return host_name(text)


def require_token_for(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a token."""
    if not is_loopback(host) and not token:
        raise ConfigurationError(
            f"refusing to listen on {host}: it is reachable from other machines; set "
            "MAILSPOOL_SERVE_TOKEN (or pass --token) so that every page asks for it"
        )


def secure_headers(response: Response) -> Response:
    response.headers.extend(
        [
            ("content-security-policy", _CSP),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "same-origin"),
            ("cache-control", "no-store"),
        ]
    )
    return response


class Guard:
    """Checks a request's token, CSRF token and origin; ``token`` None: no token needed."""

    def __init__(
        self,
        token: str | None,
        secret: bytes | None = None,
        hosts: AllowedHosts | None = None,
    ) -> None:
        self.token = token or None
        self._secret = secret or secrets.token_bytes(32)
        self.hosts = hosts or AllowedHosts()

    def authorised(self, request: Request) -> bool:
        if self.token is None:
            return True
        given = request.header("authorization").removeprefix("Bearer ").strip()
        return any(
            hmac.compare_digest(candidate.encode(), self.token.encode())
            for candidate in (given, request.cookie(TOKEN_COOKIE))
            if candidate
        )

    def token_matches(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(
            candidate.encode(), self.token.encode()
        )

    def browser_id(self, request: Request) -> tuple[str, bool]:
        """The per-browser CSRF value, and whether it is new (the cookie must be set)."""
        current = request.cookie(CSRF_COOKIE)
        if len(current) == 32 and all(c in "0123456789abcdef" for c in current):
            return current, False
        return secrets.token_hex(16), True

    def csrf_token(self, browser_id: str) -> str:
        return hmac.new(self._secret, browser_id.encode(), hashlib.sha256).hexdigest()

    def change_allowed(self, request: Request, form: dict[str, str]) -> str | None:
        """None if a POST may change state, else why not."""
        if not self.hosts.origin_allowed(request):
            return "the request does not come from this dashboard (Origin/Referer)"
        browser = request.cookie(CSRF_COOKIE)
        given = form.get(CSRF_FIELD, "")
        if not browser or not given:
            return "the form has no CSRF token; reload the page and try again"
        # bytes: compare_digest refuses str with non-ASCII characters (a TypeError)
        if not hmac.compare_digest(given.encode(), self.csrf_token(browser).encode()):
            return "the form's CSRF token is not valid; reload the page and try again"
        return None
