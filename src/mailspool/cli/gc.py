"""``mailspool gc``: remove finished batches older than an age."""

from __future__ import annotations

import click

from mailspool.cli.common import opened_store, parse_duration, store_option
from mailspool.ops import admin

__all__ = ["gc"]


@click.command()
@click.option(
    "--older-than",
    required=True,
    metavar="AGE",
    help="Age of finished batches to remove, with a unit: 30m, 12h, 7d, 2w.",
)
@store_option
def gc(older_than: str, store: str | None) -> None:
    """Remove finished batches older than an age; pending and failed ones are never touched."""
    try:
        age = parse_duration(older_than)
    except click.BadParameter as err:
        err.param_hint = "'--older-than'"
        raise
    with opened_store(store) as the_store:
        removed = admin.collect_garbage(the_store, older_than=age)
    click.echo(f"removed {len(removed)} finished batch(es)")
