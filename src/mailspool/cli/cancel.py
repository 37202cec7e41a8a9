"""``mailspool cancel KEY``: stop a pending or scheduled e-mail sent with an idempotency key."""

from __future__ import annotations

import click

from mailspool.cli.common import errors, load_settings, store_option
from mailspool.ops.cancel import cancel

__all__ = ["cancel_command"]


@click.command("cancel")
@click.argument("key")
@store_option
@click.pass_context
def cancel_command(ctx: click.Context, key: str, store: str | None) -> None:
    """Stop the pending or scheduled e-mail sent with KEY; exit 1 if it was not stopped
    (unknown key, already sent, failed or cancelled, or being delivered right now)."""
    with errors():
        url = load_settings(store=store).store
        stopped = cancel(key, store=url)
    if not stopped:
        raise click.ClickException(
            f"not cancelled: no e-mail with key {key!r} waits to be sent in {url}"
        )
    click.echo(f"cancelled the e-mail with key {key!r} in {url}")
