"""``mailspool serve``: the dashboard on uvicorn, loopback unless a token is set."""

from __future__ import annotations

from mailspool.stores.base import Store
from mailspool.web.app import Dashboard
from mailspool.web.security import require_token_for

__all__ = ["serve"]


def serve(
    store: Store, *, host: str, port: int, token: str | None, show_bodies: bool = False
) -> None:
    """Serve until interrupted; raises ``ConfigurationError`` before binding a
    non-loopback address without a token."""
    import uvicorn

    require_token_for(host, token)
    app = Dashboard(store, token=token, show_bodies=show_bodies).asgi()
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
