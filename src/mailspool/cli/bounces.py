"""``mailspool bounces ingest FILE|-`` and ``mailspool bounces imap URL``.

Both read returned mail (bounces, abuse reports) addressed to the VERP addresses that
``MAILSPOOL_BOUNCE_ADDRESS`` and ``MAILSPOOL_BOUNCE_SECRET`` make, and record it as SES
events are recorded (``feedback.returned``). ``ingest`` exits 75 (EX_TEMPFAIL, "try
again later" to Postfix's ``pipe`` and procmail) when the store cannot be written, and 0
otherwise: a rejected or ignored message is logged and counted, not bounced again.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import IO

import click

from mailspool.cli.common import load_settings, opened_store, store_option
from mailspool.config import Settings
from mailspool.errors import StoreError
from mailspool.feedback.imap import Mailbox, MailboxError
from mailspool.feedback.returned import ReturnedReport, record_returned
from mailspool.feedback.settings import bounce_verp, feedback_options
from mailspool.feedback.verp import Verp

__all__ = ["bounces"]

EX_TEMPFAIL = 75


@click.group()
def bounces() -> None:
    """Bounces and complaints returned by e-mail (VERP, DSN, ARF), without SES."""


@bounces.command("ingest")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--to",
    "envelope_to",
    metavar="ADDRESS",
    help="The address the message was delivered to (Postfix: ${original_recipient}).",
)
@store_option
def bounces_ingest(file: IO[bytes], envelope_to: str | None, store: str | None) -> None:
    """Record one returned message from FILE ('-': stdin), e.g. from a Postfix pipe
    transport or procmail. The same message twice changes nothing."""
    settings = load_settings(store=store)
    verp = _verp(settings)
    raw = file.read()
    with opened_store(store, quiet=True) as the_store:
        try:
            report = record_returned(
                the_store, raw, verp, envelope_to=envelope_to, options=feedback_options(settings)
            )
        except StoreError as err:
            click.echo(f"not recorded, try again later: {err}", err=True)
            sys.exit(EX_TEMPFAIL)
    _say(report)


@bounces.command("imap")
@click.argument("url")
@click.option(
    "--move",
    "move_to",
    metavar="FOLDER",
    help="Move each message read here (default: mark it \\Seen).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds between passes.",
)
@click.option(
    "--once",
    is_flag=True,
    help="One pass, then exit (for cron); fails if the server cannot be reached.",
)
@click.option("--cafile", type=click.Path(dir_okay=False), help="CA certificates to trust for TLS.")
@click.option("--insecure", is_flag=True, help="Do not verify the server's TLS certificate.")
@store_option
def bounces_imap(
    url: str,
    move_to: str | None,
    interval: float,
    once: bool,
    cafile: str | None,
    insecure: bool,
    store: str | None,
) -> None:
    """Poll an IMAP mailbox for returned mail: imaps://user:pass@host:993/INBOX, or
    imap://...:143/INBOX[?starttls=true]. Reconnects with a growing delay when the
    server goes away; stops on SIGINT or SIGTERM."""
    settings = load_settings(store=store)
    verp = _verp(settings)
    mailbox = Mailbox(url, move_to=move_to, verify=not insecure, cafile=cafile)
    with opened_store(store, quiet=once) as the_store:
        report = ReturnedReport()
        options = feedback_options(settings)  # ingest shares the store's suppression list

        def handle(raw: bytes) -> None:
            record_returned(the_store, raw, verp, report=report, options=options)

        if once:
            try:
                mailbox.poll_once(handle)
            except (MailboxError, StoreError) as err:
                _say(report)
                raise click.ClickException(str(err)) from err
            _say(report)
            return
        stopping = threading.Event()
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda *_: stopping.set())
        mailbox.run(handle, interval=interval, stopping=stopping)
        _say(report)


def _verp(settings: Settings) -> Verp:
    verp = bounce_verp(settings)
    if verp is None:
        raise click.ClickException(
            "set MAILSPOOL_BOUNCE_ADDRESS and MAILSPOOL_BOUNCE_SECRET: only returned mail "
            "with a signed VERP address is believed"
        )
    return verp


def _say(report: ReturnedReport) -> None:
    for problem in report.problems:
        click.echo(problem, err=True)
    click.echo(report.line())
