"""``mailspool gc``: remove finished, failed and event records past their retention."""

from __future__ import annotations

import click

from mailspool.cli.common import errors, load_settings, opened_store, parse_duration, store_option
from mailspool.cli.options import setting_option
from mailspool.ops.retention import apply_retention
from mailspool.retention import Retention, RetentionState

__all__ = ["gc"]


@click.command()
@click.option(
    "--older-than",
    metavar="AGE",
    help="Remove only finished batches older than AGE (30m, 12h, 7d, 2w), whatever "
    "the retention says.",
)
@setting_option("retention", metavar="STATE=AGE,...")
@store_option
def gc(older_than: str | None, retention: Retention | None, store: str | None) -> None:
    """Remove finished batches, failed e-mails and feedback events past their retention
    (MAILSPOOL_RETENTION); pending, scheduled, claimed, paused and fallback records are
    never touched."""
    if older_than is not None:
        try:
            retention = Retention(finished=parse_duration(older_than))
        except click.BadParameter as err:
            err.param_hint = "'--older-than'"
            raise
    settings = load_settings(store=store, retention=retention)
    # through the seal: the times inside sealed records are read, and a batch's tally
    # record is written sealed, as everything else in an encrypted store
    with errors(), opened_store(settings.store) as the_store:
        report = apply_retention(the_store, settings.retention)
    click.echo(
        f"removed {report.count(RetentionState.FINISHED)} finished batch(es), "
        f"{report.count(RetentionState.FAILED)} failed e-mail(s), "
        f"{report.count(RetentionState.EVENTS)} event record(s)"
    )
    for key in report.unreadable:
        click.echo(f"judged by modification time (no readable time inside): {key}", err=True)
