"""``mailspool send``: one e-mail, sent at once (--priority) or queued for the worker;
its exit status 3 says the configured store refused it and it waits in the fallback."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click

from mailspool.cli import EXIT_FALLBACK
from mailspool.cli.common import errors, settings_from, store_option
from mailspool.cli.options import setting_option
from mailspool.config import Settings
from mailspool.errors import InvalidMessage
from mailspool.headers import Priority
from mailspool.message import Message
from mailspool.producer import api
from mailspool.producer.fallback import Written, watch_writes
from mailspool.producer.later import Later, moment_of, parse_when

__all__ = ["EXIT_FALLBACK", "send"]


class _When(click.ParamType[float | datetime]):
    """Seconds from now (a number), or an ISO 8601 time with its offset."""

    name = "when"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float | datetime:
        if isinstance(value, float | datetime):
            return value
        name = "/".join(param.opts) if param is not None else "--at/--expires"
        try:
            when = parse_when(str(value), name)
            moment_of(when, name, datetime.now(UTC))  # a time that exists: not 1e300 s
        except InvalidMessage as err:
            self.fail(err.reason, param, ctx)
        return when


_WHEN = _When()


@click.command()
@click.option("--to", "to", multiple=True, required=True, help="Recipient (repeatable).")
@click.option("--cc", multiple=True, help="Cc recipient (repeatable).")
@click.option("--bcc", multiple=True, help="Bcc recipient (repeatable; never in a header).")
@click.option("--reply-to", "reply_to", multiple=True, help="Reply-To address (repeatable).")
@setting_option("sender", "--from", metavar="TEXT")
@click.option("--subject", required=True)
@click.option("--body", help="The body text.")
@click.option(
    "--body-file",
    type=click.File("r", encoding="utf-8"),
    help="Read the body from a file ('-': stdin).",
)
@click.option("--html", is_flag=True, help="The body is HTML (default: plain text).")
@click.option(
    "--attach", multiple=True, type=click.Path(dir_okay=False), help="Attach a file (repeatable)."
)
@click.option(
    "--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Extra header (repeatable)."
)
@click.option(
    "--priority/--deferred",
    default=None,
    help="Send now, or queue (default: the classifier decides).",
)
@click.option(
    "--at",
    "send_at",
    type=_WHEN,
    metavar="WHEN",
    help="Send no earlier than WHEN: seconds from now, or ISO 8601 with an offset "
    "(2026-11-30T09:00:00+01:00). Makes a --priority e-mail deferred.",
)
@click.option(
    "--expires", "expires_at", type=_WHEN, metavar="WHEN", help="Fail it, unsent, after WHEN."
)
@click.option(
    "--key",
    help="Idempotency key: accepted once within MAILSPOOL_IDEMPOTENCY_WINDOW; "
    "'mailspool cancel KEY' stops it. A key already accepted: nothing queued, exit 1.",
)
@store_option
@setting_option("priority_transport", metavar="URL")
@setting_option("emails_per_file")
@click.pass_context
def send(ctx: click.Context, /, **opts: Any) -> None:
    """Send one e-mail now (--priority) or queue it for the worker."""
    if (opts["body"] is None) == (opts["body_file"] is None):
        raise click.UsageError("give the body with exactly one of --body or --body-file")
    body = opts["body"] if opts["body"] is not None else opts["body_file"].read()
    with errors():
        settings = settings_from(opts, "store", "priority_transport", "emails_per_file", "sender")
        extra = []
        for line in opts["headers"]:
            name, colon, value = line.partition(":")
            if not colon:
                raise click.UsageError(f"--header {line!r}: write it as 'Name: value'")
            extra.append((name.strip(), value.strip()))
        message = Message.build(
            to=list(opts["to"]),
            cc=list(opts["cc"]),
            bcc=list(opts["bcc"]),
            reply_to=list(opts["reply_to"]),
            subject=opts["subject"],
            html=body if opts["html"] else None,
            text=None if opts["html"] else body,
            sender=opts["sender"],
            headers=extra,
            attachments=list(opts["attach"]),
        )
        priority = opts["priority"]
        if priority is None:
            priority = settings.default_priority == Priority.NOW
        later = Later(opts["send_at"], opts["expires_at"], opts["key"])
        with watch_writes() as writes:
            if later:
                said = _send_later(message, priority, later, settings)
            elif priority:
                said = _send_priority(message, settings)
            else:
                api.send_message(message, priority=False, settings=settings)
                said = "queued"
        if said == "sent":  # at once, or queued at the front if the transport was down
            if not writes:
                click.echo(f"sent via {settings.priority_transport}")
            said = "queued at the front" if writes else ""
        _report_writes(said, settings, writes)


def _send_priority(message: Message, settings: Settings) -> str:
    result = api.send_priority(message, settings=settings)
    if result.receipt is not None:
        via = result.receipt.via or settings.priority_transport  # a chain's member
        click.echo(f"sent {result.receipt.message_id} via {via}")
        return ""
    click.echo(f"priority transport unavailable ({result.outage})", err=True)
    return "queued at the front"


def _report_writes(said: str, settings: Settings, writes: list[Written]) -> None:
    """Say where the batches really went; exit ``EXIT_FALLBACK`` if the configured store
    refused them (they wait in the fallback store)."""
    if not said:
        return
    places = [w.store for w in writes] or [settings.store]
    click.echo(f"{said} in {', '.join(dict.fromkeys(places))}")
    refused = [w for w in writes if w.fell_back]
    if refused:
        click.echo(
            f"error: {settings.store} refused the batch ({refused[0].refused}); it is in the "
            f"fallback store {refused[0].store} until `mailspool worker` moves it back",
            err=True,
        )
        sys.exit(EXIT_FALLBACK)


def _send_later(message: Message, priority: bool, later: Later, settings: Settings) -> str:
    """``send --at/--expires/--key``: exit 1, nothing queued, for a key already accepted."""
    if not api.send_message(message, priority=priority, settings=settings, later=later):
        raise click.ClickException(f"key {later.key!r} was already accepted: nothing queued")
    if priority and later.send_at is None:
        return "sent"
    if later.send_at is not None:
        return "scheduled"
    return "queued"
