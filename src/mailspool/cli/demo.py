"""``mailspool demo``: a notification burst handed off in one request, then delivered."""

from __future__ import annotations

import sys

import click

from mailspool.cli.common import errors, load_settings, store_option
from mailspool.cli.options import setting_option
from mailspool.cli.serve import serve

__all__ = ["demo"]


@click.command()
@click.option("--followers", type=click.IntRange(min=1), default=500, show_default=True)
@store_option
@setting_option("transport", metavar="URL")
@click.option(
    "--serve/--no-serve",
    "leave_serving",
    default=None,
    help="Then leave the dashboard running on 127.0.0.1 (default: ask when a terminal is attached).",
)
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8025, show_default=True)
@click.pass_context
def demo(
    ctx: click.Context,
    followers: int,
    store: str | None,
    transport: str | None,
    leave_serving: bool | None,
    port: int,
) -> None:
    """Hand off a notification burst in one request, then deliver it to the outbox."""
    from mailspool.ops.demo import run_demo

    with errors():
        settings = load_settings(store=store, transport=transport)
        run_demo(settings, followers=followers)
    url = f"http://127.0.0.1:{port}/"
    if leave_serving is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        leave_serving = interactive and click.confirm(f"Leave the dashboard running at {url}?")
    if not leave_serving:
        from mailspool.ops.demo import next_commands

        for label, command in zip(
            ("then:", "", ""), next_commands(settings.store, port), strict=True
        ):
            click.echo(f"{label:<11}{command}")
        return
    ctx.invoke(serve, host="127.0.0.1", port=port, serve_token=None, store=settings.store)
