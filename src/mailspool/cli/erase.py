"""``mailspool erase ADDRESS``: forget one address everywhere the store holds it."""

from __future__ import annotations

import click
import orjson

from mailspool.cli.common import errors, load_settings, say_store, store_option
from mailspool.ops.erase import erase
from mailspool.producer.fallback import fallback_url_for

__all__ = ["erase_command"]


@click.command("erase")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print the audit record as JSON.")
@store_option
def erase_command(address: str, as_json: bool, store: str | None) -> None:
    """Erase ADDRESS (any spelling) from the store and its fallback store: cancel the
    e-mails to it not yet sent, redact it and the e-mails sent to it alone from every
    record, keep only a keyed hash if it was suppressed (it stays suppressed), and write
    an audit record under erasures/ without the address. Safe to run again; exit 1 if
    something could not be erased yet (a batch being delivered): run it again later."""
    settings = load_settings(store=store)
    say_store(settings.store)
    with errors():
        fallback = fallback_url_for(settings.store, settings.fallback_store)
        report = erase(address, store=settings.store, fallback=fallback)
    if as_json:
        click.echo(orjson.dumps({**report.as_record(), "record": report.record_key}))
    else:
        click.echo(
            f"erased: {report.cancelled} pending e-mail(s) cancelled, "
            f"{len(report.redacted)} record(s) redacted, {len(report.removed)} removed, "
            f"suppression {'kept as a keyed hash' if report.suppressed else 'had no entry'}; "
            f"audit record {report.record_key}"
        )
        for key in report.unparsed:
            click.echo(f"unparsed, scrubbed as bytes: {key}", err=True)
    if not report.complete:
        left = [*report.skipped, *report.too_large]
        raise click.ClickException(
            f"not erased yet from {len(left)} object(s) (being delivered or too large): "
            f"{', '.join(left[:5])}; run mailspool erase again once they are finished"
        )
