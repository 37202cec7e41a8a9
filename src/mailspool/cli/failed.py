"""``mailspool failed``: list, show and retry e-mails that failed."""

from __future__ import annotations

from typing import Any

import click

from mailspool.cli.common import (
    Listing,
    list_command,
    not_found,
    opened_store,
    print_json,
    store_option,
)
from mailspool.errors import KeyNotFound
from mailspool.ops import admin
from mailspool.stores import Store

__all__ = ["failed"]


@click.group()
def failed() -> None:
    """List, show and retry e-mails that failed."""


_FAILED_LISTING = "failed list"


@list_command(failed, "{store, failed: [...]} as JSON.")
def failed_list(store: Store) -> Listing[admin.FailedEmail]:
    """One line per failed e-mail: id, attempts, recipients, reason."""
    return Listing(
        admin.list_failed(store),
        line=lambda i: (
            f"{i.id}\t{i.record.attempts}\t{', '.join(i.record.recipients)}\t{i.record.reason}"
        ),
        json=lambda items: {"store": store.url, "failed": [_failed_row(i) for i in items]},
        header="ID\tATTEMPTS\tRECIPIENTS\tREASON",
        empty="no failed e-mails",
    )


def _failed_row(item: admin.FailedEmail) -> dict[str, Any]:
    record = item.record
    return {
        "id": item.id,
        "attempts": record.attempts,
        "retryable": record.retryable,
        "recipients": record.recipients,
        "reason": record.reason,
    }


@failed.command("show")
@click.argument("failed_id")
@store_option
def failed_show(failed_id: str, store: str | None) -> None:
    """The whole record of one failed e-mail as JSON (id as printed by 'failed list')."""
    with opened_store(store, quiet=True) as the_store:
        try:
            item = admin.show_failed(the_store, failed_id)
        except KeyNotFound:
            raise not_found("failed e-mail", failed_id, the_store, _FAILED_LISTING) from None
    print_json({"store": the_store.url, "id": item.id, **item.record.to_json()})


@failed.command("retry")
@click.argument("failed_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every failed e-mail.")
@store_option
def failed_retry(failed_ids: tuple[str, ...], retry_all: bool, store: str | None) -> None:
    """Queue failed e-mails again, as a new batch."""
    if not failed_ids and not retry_all:
        raise click.UsageError("name the e-mails to retry, or pass --all")
    with opened_store(store) as the_store:
        items = admin.list_failed(the_store) if retry_all else []
        for failed_id in failed_ids:
            try:
                items.append(admin.show_failed(the_store, failed_id))
            except KeyNotFound:
                raise not_found("failed e-mail", failed_id, the_store, _FAILED_LISTING) from None
        keys = admin.retry_failed(the_store, items)
    click.echo(f"re-queued {len(items)} e-mail(s) in {len(keys)} batch(es)")
