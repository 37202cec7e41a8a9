"""``mailspool serve``: the dashboard and /metrics for a store (mailspool[serve])."""

from __future__ import annotations

import click

from mailspool.cli.common import errors, load_settings, store_option
from mailspool.cli.options import setting_option
from mailspool.spool.sealed_store import sealed
from mailspool.stores import open_store

__all__ = ["serve"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8025, show_default=True)
@setting_option("serve_token", "--token", metavar="TEXT")
@click.option("--show-bodies", is_flag=True, help="Show e-mail bodies on the failed page.")
@setting_option("allowed_hosts", "--allowed-host", metavar="NAME", multiple=True)
@store_option
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    serve_token: str | None,
    show_bodies: bool,
    allowed_hosts: tuple[frozenset[str], ...],
    store: str | None,
) -> None:
    """The dashboard and /metrics for a store (needs mailspool[serve])."""
    try:
        from mailspool.web.security import require_token_for
        from mailspool.web.server import serve as run_server
    except ImportError as err:
        raise click.ClickException(
            f"serve needs mailspool[serve] (pip install 'mailspool[serve]'): {err}"
        ) from None
    with errors():
        names = frozenset[str]().union(*allowed_hosts) or None  # each --allowed-host's names
        settings = load_settings(store=store, serve_token=serve_token, allowed_hosts=names)
        with sealed(open_store(settings.store), settings.encryption_key) as the_store:
            require_token_for(host, settings.serve_token)
            click.echo(
                f"mailspool dashboard: http://{_url_host(host)}:{port}/ for {the_store.url} "
                "(Ctrl-C to stop)",
                err=True,
            )
            run_server(the_store, settings, host=host, port=port, show_bodies=show_bodies)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
