"""``mailspool suppression``: list, add, remove, import, export and sync with SES the
addresses never sent to again.

The commands open the store named by ``--store`` or ``MAILSPOOL_STORE`` (as every other
command does) and print one line per item, or JSON with ``--json``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import IO

import click
import orjson

from mailspool.cli.common import Listing, list_command, opened_store, store_option
from mailspool.errors import MailspoolError
from mailspool.feedback.lines import Line, read_lines
from mailspool.feedback.suppression import Reason, Suppression, SuppressionList
from mailspool.spool.records import moment
from mailspool.stores import Store
from mailspool.tenant_options import TENANT_NAME

__all__ = ["read_entries", "suppression"]

_REASONS = click.Choice([r.value for r in Reason])


def _tenant(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not TENANT_NAME.fullmatch(value):
        raise click.BadParameter("a tenant's name is 1 to 64 ASCII letters, digits, _ or -")
    return value


_tenant_option = click.option(
    "--tenant",
    metavar="NAME",
    callback=_tenant,
    help="The SES tenant's own list (MAILSPOOL_SES_TENANTS), not the account's.",
)


@click.group()
def suppression() -> None:
    """Addresses never sent to again: bounces, complaints, unsubscribes, manual entries."""


@list_command(suppression, "A JSON list of {address, reason, since}.", _tenant_option)
def suppression_list(store: Store, tenant: str | None) -> Listing[Suppression]:
    """Every suppressed address (for the account, or with --tenant for that tenant
    only), with its reason and since when."""
    return Listing(
        sorted(SuppressionList(store).entries(tenant), key=lambda e: e.address),
        line=lambda e: f"{e.address}\t{e.reason}\t{e.since}\t{e.diagnostic}",
        json=lambda entries: [entry.as_dict() for entry in entries],
    )


@suppression.command("add")
@click.argument("address")
@click.option("--reason", type=_REASONS, default=Reason.MANUAL.value, show_default=True)
@click.option("--diagnostic", default="", help="A note kept with the entry.")
@_tenant_option
@store_option
def suppression_add(
    address: str, reason: str, diagnostic: str, tenant: str | None, store: str | None
) -> None:
    """Never send to ADDRESS again (with --tenant: never for that tenant); an existing
    entry is kept as it is."""
    with opened_store(store) as the_store:
        entry = SuppressionList(the_store).add(
            address, Reason(reason), diagnostic=diagnostic, tenant=tenant
        )
    scope = "" if tenant is None else f" for tenant {tenant}"
    click.echo(f"suppressed {entry.address}{scope} ({entry.reason} since {entry.since})")


@suppression.command("remove")
@click.argument("address")
@_tenant_option
@store_option
def suppression_remove(address: str, tenant: str | None, store: str | None) -> None:
    """Let ADDRESS receive mail again (with --tenant: that tenant's entry only)."""
    with opened_store(store) as the_store:
        removed = SuppressionList(the_store).remove(address, tenant)
    scope = "" if tenant is None else f" for tenant {tenant}"
    click.echo(f"removed {address}{scope}" if removed else f"{address} was not suppressed{scope}")


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
