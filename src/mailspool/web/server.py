"""``mailspool serve``: the dashboard on uvicorn, loopback unless a token is set."""

from __future__ import annotations

from collections.abc import Iterable

from mailspool.stores.base import Store
from mailspool.web.app import Dashboard
from mailspool.web.security import require_token_for

__all__ = ["serve"]


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
    the loopback names (None: the ``allowed_hosts`` setting)."""
    import uvicorn

    require_token_for(host, token)
    app = Dashboard(store, token=token, show_bodies=show_bodies, allowed_hosts=allowed_hosts).asgi()
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
