"""``mailspool suppression``, ``mailspool trace`` and ``mailspool events``.

The commands open the store named by ``--store`` or ``MAILSPOOL_STORE`` (as every other
command does) and print one line per item, or JSON with ``--json``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO

import click
import orjson

from mailspool.commands.common import (
    Listing,
    list_command,
    load_settings,
    opened_store,
    print_json,
    store_option,
)
from mailspool.errors import MailspoolError
from mailspool.feedback.route import ingest_lines
from mailspool.feedback.settings import feedback_options
from mailspool.feedback.suppression import Reason, Suppression, SuppressionList
from mailspool.feedback.trace import is_own_message_id, trace_address, trace_message
from mailspool.stores import Store

__all__ = ["events", "suppression", "trace"]

_REASONS = click.Choice([r.value for r in Reason])


@click.group()
def suppression() -> None:
    """Addresses never sent to again: bounces, complaints, unsubscribes, manual entries."""


@list_command(suppression, "A JSON list of {address, reason, since}.")
def suppression_list(store: Store) -> Listing[Suppression]:
    """Every suppressed address, with its reason and since when."""
    return Listing(
        sorted(SuppressionList(store).entries(), key=lambda e: e.address),
        line=lambda e: f"{e.address}\t{e.reason}\t{e.since}\t{e.diagnostic}",
        json=lambda entries: [entry.as_dict() for entry in entries],
    )


@suppression.command("add")
@click.argument("address")
@click.option("--reason", type=_REASONS, default=Reason.MANUAL.value, show_default=True)
@click.option("--diagnostic", default="", help="A note kept with the entry.")
@store_option
def suppression_add(address: str, reason: str, diagnostic: str, store: str | None) -> None:
    """Never send to ADDRESS again (an existing entry is kept as it is)."""
    with opened_store(store) as the_store:
        entry = SuppressionList(the_store).add(address, Reason(reason), diagnostic=diagnostic)
    click.echo(f"suppressed {entry.address} ({entry.reason} since {entry.since})")


@suppression.command("remove")
@click.argument("address")
@store_option
def suppression_remove(address: str, store: str | None) -> None:
    """Let ADDRESS receive mail again."""
    with opened_store(store) as the_store:
        removed = SuppressionList(the_store).remove(address)
    click.echo(f"removed {address}" if removed else f"{address} was not suppressed")


@suppression.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--reason", type=_REASONS, default=Reason.MANUAL.value, help="For lines without one.")
@click.option("--replace", is_flag=True, help="Overwrite entries already present.")
@store_option
def suppression_import(file: IO[str], reason: str, replace: bool, store: str | None) -> None:
    """Add entries from FILE ('-': stdin): JSON lines as 'export' writes, or one address a line."""
    entries = list(read_entries(file, Reason(reason)))
    with opened_store(store) as the_store:
        written = SuppressionList(the_store).import_entries(entries, replace=replace)
    click.echo(f"imported {written} address(es)")


@suppression.command("export")
@store_option
def suppression_export(store: str | None) -> None:
    """Every entry as JSON lines on stdout (what 'import' reads)."""
    with opened_store(store, quiet=True) as the_store:
        for entry in SuppressionList(the_store).entries():
            sys.stdout.write(entry.encode().decode() + "\n")


@suppression.command("sync-ses")
@click.option("--region", help="SES region (default: the AWS configuration's).")
@click.option("--pull/--no-pull", default=True, help="Add SES's entries here.")
@click.option("--push/--no-push", default=True, help="Put bounces and complaints on SES's list.")
@store_option
def suppression_sync_ses(region: str | None, pull: bool, push: bool, store: str | None) -> None:
    """Sync with SES's account-level suppression list (needs mailspool[aws])."""
    from mailspool.feedback import ses_sync

    with opened_store(store) as the_store:
        client = ses_sync.open_client(region)
        suppressions = SuppressionList(the_store)
        pulled = ses_sync.pull(client, suppressions) if pull else 0
        pushed = ses_sync.push(client, suppressions) if push else 0
    click.echo(f"pulled {pulled} address(es) from SES, pushed {pushed}")


def read_entries(file: IO[str], reason: Reason) -> Iterator[Suppression]:
    """Entries from JSON lines or bare addresses; a bad line stops with its line number."""
    name = getattr(file, "name", "-")
    for number, line in enumerate(file, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        source = f"{name}, line {number}"
        try:
            if text.startswith("{"):
                data = orjson.loads(text)
                if isinstance(data, dict):
                    data.setdefault("reason", reason.value)
                yield Suppression.from_dict(data, source)
            else:
                yield Suppression.from_dict({"address": text, "reason": reason.value}, source)
        except (ValueError, MailspoolError) as err:
            message = str(err) if str(err).startswith(source) else f"{source}: {err}"
            raise click.ClickException(message) from err


@click.command()
@click.argument("target", metavar="ADDRESS|MESSAGE-ID")
@store_option
@click.option("--json", "as_json", is_flag=True, help="A JSON list of e-mails with their states.")
def trace(target: str, store: str | None, as_json: bool) -> None:
    """What happened to the e-mails to an address, or to one e-mail (its Message-ID or the
    provider's id): queued, sent, delivered, bounced, complained, opened, failed..."""
    with opened_store(store, quiet=as_json) as the_store:
        if "@" in target and not target.startswith("<") and not is_own_message_id(target):
            traces = trace_address(the_store, target)
        else:
            traces = trace_message(the_store, target)
    if as_json:
        print_json([t.as_dict() for t in traces])
        return
    if not traces:
        click.echo(f"nothing on record for {target}")
    for item in traces:
        data = item.as_dict()
        where = f"{data['batch']}.{data['index']}" if data["batch"] else "(batch no longer kept)"
        click.echo(f"{where}  {data['subject']!r} to {', '.join(data['recipients'])}")
        for step in data["states"]:
            click.echo(f"  {step['at'] or '-':32} {step['state']:18} {step['detail']}")


@click.group()
def events() -> None:
    """SES events (bounces, complaints, deliveries...) from other routes than Lambda."""


@events.command("ingest")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@store_option
def events_ingest(file: IO[str], store: str | None) -> None:
    """Record the SES events in FILE ('-': stdin), one JSON document a line: an SES event
    in either format, an SNS notification, an EventBridge event or a Lambda event.
    A redelivered event changes nothing; a bad line is reported and the rest recorded."""
    with opened_store(store) as the_store:
        options = feedback_options(load_settings(store=store))
        result, problems = ingest_lines(file, the_store, options=options)
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(
        f"{result.events} event(s), {result.new} new, {result.suppressed} address(es) suppressed"
    )
    if problems:
        raise click.ClickException(f"{len(problems)} line(s) not recorded")
