"""``mailspool status``: the counts of a store, its bounce and complaint rates, the
provider's 24-hour quota as a worker last saw it, and pauses."""

from __future__ import annotations

import time
from typing import Any

import click

from mailspool.cli.common import load_settings, opened_store, print_json, store_option
from mailspool.cli.webhooks import describe_outbox
from mailspool.feedback.rates import collect_rates
from mailspool.ops.status import collect_status
from mailspool.ops.tenants import tenant_counts
from mailspool.spool.pauses import describe_pause, pause_fields, read_pauses
from mailspool.spool.quota_record import read_quota
from mailspool.webhooks.outbox import outbox_stats

__all__ = ["status"]


@click.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--tenants",
    is_flag=True,
    help="Also count the e-mails of each SES tenant (reads every batch file on record).",
)
@click.pass_context
def status(ctx: click.Context, store: str | None, as_json: bool, tenants: bool) -> None:
    """Count pending, sent, failed and quarantined e-mails."""
    settings = load_settings(store=store)
    with opened_store(settings.store, quiet=as_json) as the_store:
        result = collect_status(the_store)
        rates = collect_rates(the_store, sends=settings.rate_sends)
        pauses = read_pauses(the_store)
        outbox = outbox_stats(the_store, now=time.time())
        quota = read_quota(the_store)
        by_tenant = tenant_counts(the_store) if tenants else None
    if as_json:
        extra: dict[str, Any] = {"paused": [pause_fields(p) for p in pauses]}
        extra["webhooks"] = outbox.as_dict()
        extra["quota"] = None if quota is None else quota.fields()
        if by_tenant is not None:
            extra["tenants"] = {name: c.as_dict() for name, c in by_tenant.items()}
        print_json({"store": the_store.url, **result.as_dict(), **rates.as_dict(), **extra})
        return
    age = "-" if result.oldest_pending_age is None else f"{result.oldest_pending_age:.1f} s"
    click.echo(
        f"pending      {result.pending} (in {result.batches_pending} batch(es); oldest {age})\n"
        f"sent         {result.sent}\n"
        f"failed       {result.failed}\n"
        f"quarantined  {result.quarantined}\n"
        f"priority     {result.priority_sent} sent at once, {result.priority_failed} refused\n"
        f"total        {result.total}\n"
        f"bounce rate  {rates.bounce_rate:.2%}, complaint rate {rates.complaint_rate:.2%} "
        f"(last {rates.sends} sends); {rates.suppressed} suppressed\n"
        f"webhooks     {describe_outbox(outbox)}"
    )
    if quota is not None:
        click.echo(f"daily quota  {quota.describe()}")
    for pause in pauses:
        click.echo(f"delivery     {describe_pause(pause)}")
    for name, counts in (by_tenant or {}).items():
        click.echo(
            f"tenant       {name}: {counts.pending} pending, {counts.sent} sent, "
            f"{counts.failed} failed"
        )
