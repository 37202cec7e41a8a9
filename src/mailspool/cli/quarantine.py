"""``mailspool quarantine``: list, show, re-queue (after a fix) and delete the batch files
the worker set aside because it could not read them."""

from __future__ import annotations

from typing import IO

import click

from mailspool.cli.common import Listing, list_command, not_found, opened_store, store_option
from mailspool.errors import KeyNotFound
from mailspool.ops import quarantine as ops
from mailspool.stores import Store

__all__ = ["quarantine"]

_LISTING = "quarantine list"


@click.group()
def quarantine() -> None:
    """Batch files the worker could not read: list, show, requeue after a fix, delete."""


@list_command(quarantine, "{store, quarantined: [...]} as JSON.")
def quarantine_list(store: Store) -> Listing[ops.QuarantinedFile]:
    """One line per quarantined file: id, e-mails, size, why it could not be read."""
    return Listing(
        ops.list_quarantined(store),
        line=lambda item: f"{item.id}\t{item.emails}\t{item.size}\t{_error(item)}",
        json=lambda files: {"store": store.url, "quarantined": [f.as_dict() for f in files]},
        header="ID\tEMAILS\tBYTES\tERROR",
        empty="no quarantined files",
    )


@quarantine.command("show")
@click.argument("quarantine_id")
@store_option
@click.option("--raw", is_flag=True, help="Print only the file's bytes (to fix and requeue).")
def quarantine_show(quarantine_id: str, store: str | None, raw: bool) -> None:
    """The error of one quarantined file, then the file itself."""
    with opened_store(store, quiet=raw) as the_store:
        try:
            item, data = ops.show_quarantined(the_store, quarantine_id)
        except KeyNotFound:
            raise not_found("quarantined file", quarantine_id, the_store, _LISTING) from None
    if not raw:
        click.echo(f"id:     {item.id}\nemails: {item.emails}\nerror:  {_error(item)}\n")
    click.echo(data.decode("utf-8", errors="replace"))


@quarantine.command("requeue")
@click.argument("quarantine_id")
@click.option(
    "--file",
    "fixed",
    type=click.File("rb"),
    help="The fixed batch file to queue in its place (default: the quarantined file, "
    "fixed where it lies).",
)
@store_option
def quarantine_requeue(quarantine_id: str, fixed: IO[bytes] | None, store: str | None) -> None:
    """Queue a quarantined file again once it reads as a batch; refused, with the field
    at fault, while it does not."""
    with opened_store(store) as the_store:
        try:
            key = ops.requeue_quarantined(
                the_store, quarantine_id, None if fixed is None else fixed.read()
            )
        except KeyNotFound:
            raise not_found("quarantined file", quarantine_id, the_store, _LISTING) from None
    click.echo(f"re-queued {quarantine_id} as {key}")


@quarantine.command("delete")
@click.argument("quarantine_ids", nargs=-1, required=True)
@store_option
def quarantine_delete(quarantine_ids: tuple[str, ...], store: str | None) -> None:
    """Drop quarantined files and their errors for good."""
    with opened_store(store) as the_store:
        for quarantine_id in quarantine_ids:
            try:
                ops.delete_quarantined(the_store, quarantine_id)
            except KeyNotFound:
                raise not_found("quarantined file", quarantine_id, the_store, _LISTING) from None
            click.echo(f"deleted {quarantine_id}")


def _error(item: ops.QuarantinedFile) -> str:
    return "(no error record)" if item.error is None else item.error
