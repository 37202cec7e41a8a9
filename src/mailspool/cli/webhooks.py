"""``mailspool webhooks drain|status``: the webhook outbox on demand (the worker drains
it between batches; see ``mailspool.webhooks``)."""

from __future__ import annotations

import time

import click

from mailspool.cli.common import errors, load_settings, opened_store, print_json, store_option
from mailspool.webhooks.outbox import OutboxStats, outbox_stats
from mailspool.webhooks.setup import deliverer_for

__all__ = ["describe_outbox", "webhooks"]


@click.group()
def webhooks() -> None:
    """The outbox of signed webhook events (MAILSPOOL_WEBHOOK_URL)."""


@webhooks.command("drain")
@store_option
def drain(store: str | None) -> None:
    """POST every due event to MAILSPOOL_WEBHOOK_URL now; exit 1 if the receiver did
    not take them all (they wait for their next try)."""
    with errors():
        settings = load_settings(store=store)
        with opened_store(settings.store) as the_store:
            deliverer = deliverer_for(settings, the_store)
            if deliverer is None:
                raise click.ClickException("MAILSPOOL_WEBHOOK_URL is not set: no receiver")
            report = deliverer.drain()
            left = outbox_stats(the_store, now=time.time())
    click.echo(
        f"delivered {report.delivered} event(s), {report.rejected} rejected (retried), "
        f"{report.expired} expired; {describe_outbox(left)}"
    )
    if report.busy:
        click.echo("another process is draining the outbox")
    if report.waiting:
        raise click.ClickException(f"the receiver did not take every event: {report.waiting}")


@webhooks.command("status")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(store: str | None, as_json: bool) -> None:
    """Events waiting in the outbox, the oldest one's age, and those set aside."""
    with errors():
        settings = load_settings(store=store)
        with opened_store(settings.store, quiet=as_json) as the_store:
            stats = outbox_stats(the_store, now=time.time())
    if as_json:
        print_json({"store": the_store.url, **stats.as_dict()})
    else:
        click.echo(describe_outbox(stats))


def describe_outbox(stats: OutboxStats) -> str:
    """One line: ``3 pending (oldest 12.0 s), 0 failed``."""
    age = "-" if stats.oldest_age is None else f"{stats.oldest_age:.1f} s"
    return f"{stats.pending} pending (oldest {age}), {stats.failed} failed"
