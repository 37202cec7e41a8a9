"""``mailspool status``: the counts of a store, its bounce and complaint rates, the
provider's 24-hour quota as a worker last saw it, and pauses."""

from __future__ import annotations

import click

from mailspool.cli.common import load_settings, opened_store, print_json, store_option
from mailspool.feedback.rates import collect_rates
from mailspool.ops.status import collect_status
from mailspool.spool.pauses import describe_pause, pause_fields, read_pauses
from mailspool.spool.quota_record import read_quota

__all__ = ["status"]


@click.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, store: str | None, as_json: bool) -> None:
    """Count pending, sent, failed and quarantined e-mails."""
    settings = load_settings(store=store)
    with opened_store(settings.store, quiet=as_json) as the_store:
        result = collect_status(the_store)
        rates = collect_rates(the_store, sends=settings.rate_sends)
        pauses = read_pauses(the_store)
        quota = read_quota(the_store)
    if as_json:
        paused = {"paused": [pause_fields(p) for p in pauses]}
        paused["quota"] = None if quota is None else quota.fields()  # type: ignore[assignment]
        print_json({"store": the_store.url, **result.as_dict(), **rates.as_dict(), **paused})
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
        f"(last {rates.sends} sends); {rates.suppressed} suppressed"
    )
    if quota is not None:
        click.echo(f"daily quota  {quota.describe()}")
    for pause in pauses:
        click.echo(f"delivery     {describe_pause(pause)}")
