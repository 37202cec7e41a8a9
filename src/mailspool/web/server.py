"""``mailspool serve``: the dashboard on uvicorn, loopback unless a token is set."""

from __future__ import annotations

from collections.abc import Iterable

from mailspool.config import Settings
from mailspool.stores.base import Store
from mailspool.web.app import Dashboard
from mailspool.web.security import require_token_for

__all__ = ["serve"]

_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def serve(
    store: Store,
    *,
    host: str,
    port: int,
    token: str | None,
    show_bodies: bool = False,
    allowed_hosts: Iterable[str] | None = None,
) -> None:
    """Serve until interrupted; raises ``ConfigurationError`` before binding a
    non-loopback address without a token. ``allowed_hosts``: the names answered beside
    the loopback names (None: the ``allowed_hosts`` setting); the address listened on
    is one of them unless it is a wildcard (an address the operator chose is no name
    an attacker's DNS can point)."""
    import uvicorn

    require_token_for(host, token)
    names = set(Settings.load().allowed_hosts if allowed_hosts is None else allowed_hosts)
    if host not in _WILDCARDS:
        names.add(host)
    app = Dashboard(store, token=token, show_bodies=show_bodies, allowed_hosts=names).asgi()
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
