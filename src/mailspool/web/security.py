"""What keeps the dashboard safe by default.

- Binding: a non-loopback address needs a token (``require_token_for``).
- Access: with a token set, every page but the public endpoints needs it, as
  ``Authorization: Bearer <token>`` (Prometheus, scripts) or the cookie that the
  ``/login`` form sets (a browser).
- Changes of state are POSTs that carry a CSRF token and come from the same origin:
  the token is an HMAC of a random per-browser value kept in a cookie (double submit,
  signed with a secret of this process); the ``Origin`` (or ``Referer``) must name the
  host the request was sent to.
- Every response forbids framing, inline scripts and styles and sniffing (CSP and the
  usual headers).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from mailspool.errors import ConfigurationError
from mailspool.web.http import Request, Response

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "TOKEN_COOKIE",
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


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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

    def __init__(self, token: str | None, secret: bytes | None = None) -> None:
        self.token = token or None
        self._secret = secret or secrets.token_bytes(32)

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
        if not same_origin(request):
            return "the request does not come from this dashboard (Origin/Referer)"
        browser = request.cookie(CSRF_COOKIE)
        given = form.get(CSRF_FIELD, "")
        if not browser or not given:
            return "the form has no CSRF token; reload the page and try again"
        if not hmac.compare_digest(given, self.csrf_token(browser)):
            return "the form's CSRF token is not valid; reload the page and try again"
        return None


def same_origin(request: Request) -> bool:
    """The browser says the request comes from a page of this host (Origin, else Referer)."""
    host = request.header("host")
    source = request.header("origin") or request.header("referer")
    if not host or not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc == host
