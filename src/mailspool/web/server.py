"""``mailspool serve``: the dashboard on uvicorn, loopback unless a token is set."""

from __future__ import annotations

from mailspool.config import Settings
from mailspool.stores.base import Store
from mailspool.web.app import Dashboard
from mailspool.web.security import require_token_for

__all__ = ["serve"]

_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def serve(
    store: Store, settings: Settings, *, host: str, port: int, show_bodies: bool = False
) -> None:
    """Serve until interrupted; raises ``ConfigurationError`` before binding a
    non-loopback address without a token (``settings.serve_token``). The names answered
    are the loopback names, ``settings.allowed_hosts`` and the address listened on,
    unless it is a wildcard (an address the operator chose is no name an attacker's DNS
    can point)."""
    import uvicorn

    require_token_for(host, settings.serve_token)
    names = set(settings.allowed_hosts)
    if host not in _WILDCARDS:
        names.add(host)
    dashboard = Dashboard(store, show_bodies=show_bodies, settings=settings, allowed_hosts=names)
    uvicorn.run(dashboard.asgi(), host=host, port=port, log_level="warning", server_header=False)
