"""``mailspool trace ADDRESS|MESSAGE-ID``: what happened to the e-mails to an address,
or to one e-mail, one line per state (or JSON with ``--json``)."""

from __future__ import annotations

import click

from mailspool.cli.common import opened_store, print_json, store_option
from mailspool.feedback.trace import is_own_message_id, trace_address, trace_message

__all__ = ["trace"]


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
        where = (
            f"{data['batch']}.{data['index']}"
            if data["batch"]
            else "(no e-mail kept has this provider id)"
        )
        click.echo(f"{where}  {data['subject']!r} to {', '.join(data['recipients'])}")
        if item.labels():
            click.echo(f"  {item.labels()}")
        for step in data["states"]:
            click.echo(f"  {step['at'] or '-':32} {step['state']:18} {step['detail']}")
