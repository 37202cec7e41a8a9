"""``mailspool events``: record SES events that come by other routes than Lambda."""

from __future__ import annotations

from typing import IO

import click

from mailspool.cli.common import load_settings, opened_store, store_option
from mailspool.feedback.route import ingest_lines
from mailspool.feedback.settings import feedback_options

__all__ = ["events"]


@click.group()
def events() -> None:
    """SES events (bounces, complaints, deliveries...) from other routes than Lambda."""


@events.command("ingest")
@click.argument("file", type=click.File("rb"))
@store_option
def events_ingest(file: IO[bytes], store: str | None) -> None:
    """Record the SES events in FILE ('-': stdin), one JSON document a line: an SES event
    in either format, an SNS notification, an EventBridge event or a Lambda event.
    A redelivered event changes nothing. Each line is recorded alone: a bad one (not
    UTF-8, not JSON, no SES event, a date that cannot be read...) is reported on stderr
    with its line number and reason, the others are recorded, and the exit code is 1."""
    with opened_store(store) as the_store:
        options = feedback_options(load_settings(store=store))
        result, bad = ingest_lines(
            file, the_store, options=options, on_problem=lambda p: click.echo(p, err=True)
        )
    click.echo(
        f"{result.events} event(s), {result.new} new, {result.suppressed} address(es) suppressed"
    )
    if bad:
        raise click.ClickException(f"{bad} line(s) not recorded")
