"""``mailspool suppression``, ``mailspool trace`` and ``mailspool events``.

The commands open the store named by ``--store`` or ``MAILSPOOL_STORE`` (as every other
command does) and print one line per item, or JSON with ``--json``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
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
from mailspool.feedback.lines import Line, read_lines
from mailspool.feedback.route import ingest_lines
from mailspool.feedback.settings import feedback_options
from mailspool.feedback.suppression import Reason, Suppression, SuppressionList
from mailspool.feedback.trace import is_own_message_id, trace_address, trace_message
from mailspool.spool.records import moment
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
@click.argument("file", type=click.File("rb"))
@click.option("--reason", type=_REASONS, default=Reason.MANUAL.value, help="For lines without one.")
@click.option("--replace", is_flag=True, help="Overwrite entries already present.")
@store_option
def suppression_import(file: IO[bytes], reason: str, replace: bool, store: str | None) -> None:
    """Add entries from FILE ('-': stdin): JSON lines as 'export' writes, or one address a
    line. The file is streamed (bounded memory, whatever its size); a bad line is reported
    on stderr with its line number and reason, the others are imported, and the exit code
    is 1."""
    bad = 0

    def report(problem: str) -> None:
        nonlocal bad
        bad += 1
        click.echo(problem, err=True)

    with opened_store(store) as the_store:
        entries = read_entries(file, Reason(reason), on_problem=report)
        written = SuppressionList(the_store).import_entries(entries, replace=replace)
    click.echo(f"imported {written} address(es)")
    if bad:
        raise click.ClickException(f"{bad} line(s) not imported")


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


def read_entries(
    file: IO[str] | IO[bytes],
    reason: Reason,
    *,
    on_problem: Callable[[str], None] | None = None,
) -> Iterator[Suppression]:
    """Entries from JSON lines or bare addresses, a line at a time (``feedback.lines``).
    A bad line (not UTF-8, not JSON, a bad address, reason or ``since``) goes to
    ``on_problem`` as ``FILE, line N: reason`` and the others are read; without
    ``on_problem``, the first bad line stops the reading (``click.ClickException``)."""
    for line in read_lines(file):
        if line.text.startswith("#"):
            continue
        problem = line.problem
        if not problem:
            try:
                yield _entry(line, reason)
                continue
            except Exception as err:  # hostile input: any error reading it is its problem
                problem = line.fail(
                    err if isinstance(err, ValueError | MailspoolError) else repr(err)
                )
        if on_problem is None:
            raise click.ClickException(problem)
        on_problem(problem)


def _entry(line: Line, reason: Reason) -> Suppression:
    source = line.where()
    if not line.text.startswith("{"):
        return Suppression.from_dict({"address": line.text, "reason": reason.value}, source)
    try:
        data = orjson.loads(line.text)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"{source}: not JSON: {err}") from None
    if isinstance(data, dict):
        data.setdefault("reason", reason.value)
        since = data.get("since")
        if since:
            try:
                moment(since, naive="utc")
            except ValueError as err:
                raise ValueError(f"{source}: field 'since': {err}") from None
    return Suppression.from_dict(data, source)


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
        if item.labels():
            click.echo(f"  {item.labels()}")
        for step in data["states"]:
            click.echo(f"  {step['at'] or '-':32} {step['state']:18} {step['detail']}")


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
