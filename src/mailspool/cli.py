"""The ``mailspool`` command: send, cancel, worker, status, failed, quarantine, gc, demo,
suppression, trace, events (and aws, with [aws]).

Every option that has a setting falls back to its ``MAILSPOOL_*`` variable, then to the
embedded default (a spool and an outbox under ``$XDG_DATA_HOME/mailspool``). Every
command that opens a store names it (a ``store:`` line on stderr; ``"store"`` in --json).
Errors are one line on stderr and a non-zero exit: 1 for a failure, 2 for bad usage,
3 (``send``) when the configured store refused the batch and it went to the fallback.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from mailspool._version import __version__
from mailspool.commands.common import (
    Listing,
    list_command,
    load_settings,
    not_found,
    opened_store,
    parse_duration,
    print_json,
    store_option,
)
from mailspool.commands.quarantine import quarantine
from mailspool.config import POLL_INTERVAL, SETTINGS_BY_NAME, Rule, SettingError, Settings
from mailspool.delivery.factory import open_worker, poll_interval_for, stop_on_signals
from mailspool.delivery.processes import (
    Lending,
    Share,
    default_processes,
    drain_shared,
    run_processes,
)
from mailspool.delivery.worker import BatchReport, OutcomeCallback, Worker
from mailspool.errors import InvalidMessage, KeyNotFound, MailspoolError
from mailspool.feedback import cli as feedback_cli
from mailspool.feedback.rates import collect_rates
from mailspool.message import Message
from mailspool.ops import admin
from mailspool.ops.cancel import cancel
from mailspool.ops.status import collect_status
from mailspool.producer import api
from mailspool.producer.classify import Priority
from mailspool.producer.fallback import Written, watch_writes
from mailspool.producer.later import Later, moment_of, parse_when
from mailspool.settings_docs import environment_help
from mailspool.spool.pauses import describe_pause, pause_fields, read_pauses
from mailspool.stores import Store, open_store
from mailspool.transports import Transport
from mailspool.triggers.local import DrainReport, drain, run_forever

__all__ = ["main"]

FC = TypeVar("FC", bound=Callable[..., Any] | click.Command)


# "\b" keeps click from re-wrapping the list into one paragraph.
_ENV_HELP = "\b\n" + environment_help()


def _settings(ctx: click.Context, **explicit: Any) -> Settings:
    """Settings from the flags given (None: not given), then the framework's, then the
    environment."""
    return load_settings(**explicit)


def _settings_from(ctx: click.Context, opts: dict[str, Any], *names: str) -> Settings:
    """Settings from the named options of a command (None: not given), then the rest."""
    return _settings(ctx, **{name: opts[name] for name in names})


class _Checked(click.ParamType[Any]):
    """A flag checked by a rule of ``mailspool.config``: for a flag that sets a setting,
    that setting's rule, the one every other source passes, so ``--max-rate 0`` fails as
    ``MAILSPOOL_MAX_RATE=0`` does, naming the setting and the rule."""

    def __init__(self, name: str, rule: Rule) -> None:
        self.name = name
        self.rule = rule

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            checked = self.rule(self.name, value)
        except SettingError as err:
            self.fail(str(err), param, ctx)
        # "unlimited" reads as None, which Settings.load takes for "not given": keep the
        # text, so the flag still wins over MAILSPOOL_MAX_RATE
        return value if checked is None else checked


def _setting_option(flag: str, help: str) -> Callable[[FC], FC]:
    """``--max-rate`` for the setting ``max_rate``: its rule checks it, its variable is
    the fallback; both are named in the help."""
    name = flag.removeprefix("--").replace("-", "_")
    row = SETTINGS_BY_NAME[name]
    return click.option(
        flag, name, type=_Checked(name, row.parse), help=f"{help}: {row.rule}; env {row.env}."
    )


@contextmanager
def _errors() -> Iterator[None]:
    """Turn mailspool's errors into one clear line and exit status 1."""
    try:
        yield
    except MailspoolError as err:
        raise click.ClickException(str(err)) from err


@click.group(epilog=f"Environment:\n\n{_ENV_HELP}")
@click.version_option(__version__, prog_name="mailspool")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Take e-mail sending out of the web request."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)


# -- send --------------------------------------------------------------------------------------


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


@cli.command()
@click.option("--to", "to", multiple=True, required=True, help="Recipient (repeatable).")
@click.option("--cc", multiple=True, help="Cc recipient (repeatable).")
@click.option("--bcc", multiple=True, help="Bcc recipient (repeatable; never in a header).")
@click.option("--reply-to", "reply_to", multiple=True, help="Reply-To address (repeatable).")
@click.option("--from", "sender", help="From address; env MAILSPOOL_SENDER.")
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
@click.option("--priority-transport", metavar="URL", help="Env MAILSPOOL_PRIORITY_TRANSPORT.")
@_setting_option("--emails-per-file", "Split into files of at most N e-mails")
@click.pass_context
def send(ctx: click.Context, /, **opts: Any) -> None:
    """Send one e-mail now (--priority) or queue it for the worker."""
    if (opts["body"] is None) == (opts["body_file"] is None):
        raise click.UsageError("give the body with exactly one of --body or --body-file")
    body = opts["body"] if opts["body"] is not None else opts["body_file"].read()
    with _errors():
        settings = _settings_from(
            ctx, opts, "store", "priority_transport", "emails_per_file", "sender"
        )
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


#: ``mailspool send`` exit status when the configured store refused the batch and it
#: was written to the local fallback store instead (``mailspool worker`` moves it back).
EXIT_FALLBACK = 3


def _send_priority(message: Message, settings: Settings) -> str:
    result = api.send_priority(message, settings=settings)
    if result.receipt is not None:
        click.echo(f"sent {result.receipt.message_id} via {settings.priority_transport}")
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


@cli.command("cancel")
@click.argument("key")
@store_option
@click.pass_context
def cancel_command(ctx: click.Context, key: str, store: str | None) -> None:
    """Stop the pending or scheduled e-mail sent with KEY; exit 1 if it was not stopped
    (unknown key, already sent, failed or cancelled, or being delivered right now)."""
    with _errors():
        url = _settings(ctx, store=store).store
        stopped = cancel(key, store=url)
    if not stopped:
        raise click.ClickException(
            f"not cancelled: no e-mail with key {key!r} waits to be sent in {url}"
        )
    click.echo(f"cancelled the e-mail with key {key!r} in {url}")


# -- worker ------------------------------------------------------------------------------------


@cli.command()
@click.option("--drain", is_flag=True, help="Deliver everything pending, then exit.")
@store_option
@click.option("--transport", metavar="URL", help="Delivery URL; env MAILSPOOL_TRANSPORT.")
@_setting_option("--concurrency", "E-mails in flight")
@_setting_option("--max-rate", "E-mails (recipients) per second")
@_setting_option("--max-attempts", "Attempts for a transient failure")
@_setting_option("--retry-base", "First retry delay, seconds")
@click.option(
    "--poll-interval",
    type=_Checked("poll_interval", POLL_INTERVAL),
    default=None,
    help="Seconds between looks at the queue (default 0.05; 5 for an s3:// store).",
)
@click.option(
    "--sqs-queue",
    metavar="URL",
    help="With an s3:// store: take the bucket's notifications from this SQS queue.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: when a terminal is attached).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics (needs mailspool[serve]; "
    "one delivery process).",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=None,
    help="Delivery processes sharing the store, the concurrency and the rate "
    "(default: the CPUs it may use; 1 with --metrics-port).",
)
@click.pass_context
def worker(ctx: click.Context, /, **opts: Any) -> None:
    """Deliver queued batches: until stopped (SIGTERM, Ctrl-C), or once with --drain."""
    with _errors():
        names = ("store", "transport", "concurrency", "max_rate", "max_attempts", "retry_base")
        settings = _settings_from(ctx, opts, *names)
        processes = _processes(opts)
        if processes == 1:
            report = _work(settings, opts, Share(0, 1))
        else:
            report = run_processes(
                processes,
                functools.partial(_work, settings, opts),
                concurrency=settings.concurrency,
            )
        if report is not None:
            _print_drain(report, settings.store)
            if report.paused:
                raise click.ClickException("the provider paused sending; e-mails stay pending")
            if report.errors:
                listed = "; ".join(f"{r.key}: {r.error}" for r in report.errors)
                raise click.ClickException(
                    f"{len(report.errors)} batch(es) could not be delivered and wait in queue/: "
                    f"{listed}"
                )


def _processes(opts: dict[str, Any]) -> int:
    """``--processes``, else the usable CPUs; metrics are served by one process."""
    if opts["metrics_port"] is None:
        return int(opts["processes"] or default_processes())
    if (opts["processes"] or 1) > 1:
        raise click.UsageError("--metrics-port serves one process: use it with --processes 1")
    return 1


def _with_metrics(store: Store, transport: Transport, port: int) -> Transport:
    try:
        from mailspool.web.metrics import start_worker_metrics
    except ImportError as err:
        raise click.ClickException(
            f"--metrics-port needs mailspool[serve] (pip install 'mailspool[serve]'): {err}"
        ) from None
    return start_worker_metrics(store, transport, port)


def _work(settings: Settings, opts: dict[str, Any], share: Share) -> DrainReport | None:
    """One delivery process: its share of the concurrency (and so of the SMTP pool) and
    of the rate; alone, the whole of both."""
    wrap = None
    if opts["metrics_port"] is not None:
        wrap = functools.partial(_with_metrics, port=opts["metrics_port"])
    # Over SMTP every process may use the whole concurrency, lent by the idle ones
    # (``processes.Lending``); other transports take their part.
    lends = share.count > 1 and share.board is not None and _is_smtp(settings.transport)
    concurrency = settings.concurrency if lends else share.concurrency(settings.concurrency)
    mine = dataclasses.replace(settings, concurrency=concurrency)
    split: dict[str, Any] = {"split_above": share.split_above} if share.split_above else {}
    if lends:  # the ledger windows add up to one concurrency, as when split
        split["ledger_window"] = share.concurrency(settings.concurrency)
    with open_worker(mine, wrap=wrap, **split) as the_worker:
        from mailspool.transports.smtp import SMTPTransport

        if lends and isinstance(the_worker.transport, SMTPTransport):
            the_worker.transport.share_connections(Lending(share, settings.concurrency))
        the_worker.limiter.rate = share.rate(the_worker.limiter.rate)
        stop_on_signals(the_worker)
        return _deliver(the_worker, mine, opts, share)


def _is_smtp(url: str) -> bool:
    return url.partition("://")[0].lower() in ("smtp", "smtps")


def _deliver(
    the_worker: Worker, settings: Settings, opts: dict[str, Any], share: Share
) -> DrainReport | None:
    """Drain once (with a progress bar on a terminal, one process), or run until stopped."""
    if opts["drain"]:
        if share.count > 1:
            return drain_shared(
                the_worker,
                share,
                poll=poll_interval_for(the_worker.store),
                on_batch=_log_batch,
                fallback_base=settings.fallback_store,
            )
        with _progress(the_worker.store, opts["progress"]) as on_outcome:
            the_worker.on_outcome = on_outcome
            on_batch = _log_batch if on_outcome is None else None  # the bar says it
            return drain(the_worker, on_batch=on_batch, fallback_base=settings.fallback_store)
    if share.index == 0:
        click.echo(
            f"mailspool worker: {the_worker.store.url} -> {the_worker.transport.url} "
            "(Ctrl-C to stop)",
            err=True,
        )
    _run_worker(the_worker, settings, opts["poll_interval"], opts["sqs_queue"])
    return None


def _run_worker(
    the_worker: Worker, settings: Settings, poll_interval: float | None, sqs_queue: str | None
) -> None:
    """Poll the store, or consume bucket notifications from SQS (``mailspool[aws]``)."""
    if sqs_queue:
        from mailspool.aws.sqs import consume

        consume(the_worker, sqs_queue, on_batch=_log_batch, namespace=settings.metrics_namespace)
        return
    if poll_interval is None:
        poll_interval = poll_interval_for(the_worker.store)
    run_forever(
        the_worker,
        poll_interval=poll_interval,
        on_batch=_log_batch,
        fallback_base=settings.fallback_store,
    )


@contextmanager
def _progress(store: Store, wanted: bool | None) -> Iterator[OutcomeCallback | None]:
    show = sys.stderr.isatty() if wanted is None else wanted
    if not show:
        yield None
        return
    total = collect_status(store).pending
    with click.progressbar(length=total, label="delivering", file=sys.stderr, show_pos=True) as bar:
        yield lambda batch_id, index, status: bar.update(1)


def _log_batch(report: BatchReport) -> None:
    """One line per batch on stderr, printed here only (the worker does not log it), so
    -v adds the other log lines without repeating it. A batch another worker (or delivery
    process) holds, or had already finished, is that one's to report."""
    if report.ran_here:
        click.echo(report.line(), err=True)


def _print_drain(report: DrainReport, store: str) -> None:
    click.echo(report.summary(store))


# -- status, failed, gc ---------------------------------------------------------------------------


@cli.command()
@store_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, store: str | None, as_json: bool) -> None:
    """Count pending, sent, failed and quarantined e-mails."""
    settings = _settings(ctx, store=store)
    with opened_store(settings.store, quiet=as_json) as the_store:
        result = collect_status(the_store)
        rates = collect_rates(the_store, sends=settings.rate_sends)
        pauses = read_pauses(the_store)
    if as_json:
        paused = {"paused": [pause_fields(p) for p in pauses]}
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
    for pause in pauses:
        click.echo(f"delivery     {describe_pause(pause)}")


@cli.group()
def failed() -> None:
    """List, show and retry e-mails that failed."""


_FAILED_LISTING = "failed list"


@list_command(failed, "{store, failed: [...]} as JSON.")
def failed_list(store: Store) -> Listing[admin.FailedEmail]:
    """One line per failed e-mail: id, attempts, recipients, reason."""
    return Listing(
        admin.list_failed(store),
        line=lambda i: (
            f"{i.id}\t{i.record.attempts}\t{', '.join(i.record.recipients)}\t{i.record.reason}"
        ),
        json=lambda items: {"store": store.url, "failed": [_failed_row(i) for i in items]},
        header="ID\tATTEMPTS\tRECIPIENTS\tREASON",
        empty="no failed e-mails",
    )


def _failed_row(item: admin.FailedEmail) -> dict[str, Any]:
    record = item.record
    return {
        "id": item.id,
        "attempts": record.attempts,
        "retryable": record.retryable,
        "recipients": record.recipients,
        "reason": record.reason,
    }


@failed.command("show")
@click.argument("failed_id")
@store_option
def failed_show(failed_id: str, store: str | None) -> None:
    """The whole record of one failed e-mail as JSON (id as printed by 'failed list')."""
    with opened_store(store, quiet=True) as the_store:
        try:
            item = admin.show_failed(the_store, failed_id)
        except KeyNotFound:
            raise not_found("failed e-mail", failed_id, the_store, _FAILED_LISTING) from None
    print_json({"store": the_store.url, "id": item.id, **item.record.to_json()})


@failed.command("retry")
@click.argument("failed_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every failed e-mail.")
@store_option
def failed_retry(failed_ids: tuple[str, ...], retry_all: bool, store: str | None) -> None:
    """Queue failed e-mails again, as a new batch."""
    if not failed_ids and not retry_all:
        raise click.UsageError("name the e-mails to retry, or pass --all")
    with opened_store(store) as the_store:
        items = admin.list_failed(the_store) if retry_all else []
        for failed_id in failed_ids:
            try:
                items.append(admin.show_failed(the_store, failed_id))
            except KeyNotFound:
                raise not_found("failed e-mail", failed_id, the_store, _FAILED_LISTING) from None
        keys = admin.retry_failed(the_store, items)
    click.echo(f"re-queued {len(items)} e-mail(s) in {len(keys)} batch(es)")


cli.add_command(quarantine)


@cli.command()
@click.option(
    "--older-than",
    required=True,
    metavar="AGE",
    help="Age of finished batches to remove, with a unit: 30m, 12h, 7d, 2w.",
)
@store_option
def gc(older_than: str, store: str | None) -> None:
    """Remove finished batches older than an age; pending and failed ones are never touched."""
    try:
        age = parse_duration(older_than)
    except click.BadParameter as err:
        err.param_hint = "'--older-than'"
        raise
    with opened_store(store) as the_store:
        removed = admin.collect_garbage(the_store, older_than=age)
    click.echo(f"removed {len(removed)} finished batch(es)")


@cli.command()
@click.option("--followers", type=click.IntRange(min=1), default=500, show_default=True)
@store_option
@click.option("--transport", metavar="URL", help="Delivery URL; env MAILSPOOL_TRANSPORT.")
@click.option(
    "--serve/--no-serve",
    "leave_serving",
    default=None,
    help="Then leave the dashboard running on 127.0.0.1 (default: ask when a terminal is attached).",
)
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8025, show_default=True)
@click.pass_context
def demo(
    ctx: click.Context,
    followers: int,
    store: str | None,
    transport: str | None,
    leave_serving: bool | None,
    port: int,
) -> None:
    """Hand off a notification burst in one request, then deliver it to the outbox."""
    from mailspool.ops.demo import run_demo

    with _errors():
        settings = _settings(ctx, store=store, transport=transport)
        run_demo(settings, followers=followers)
    url = f"http://127.0.0.1:{port}/"
    if leave_serving is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        leave_serving = interactive and click.confirm(f"Leave the dashboard running at {url}?")
    if not leave_serving:
        click.echo(f"dashboard: mailspool serve --store {settings.store}  (then open {url})")
        return
    ctx.invoke(serve, host="127.0.0.1", port=port, token=None, store=settings.store)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8025, show_default=True)
@click.option(
    "--token",
    help="Every page but the public endpoints asks for it; needed off loopback. "
    "Env MAILSPOOL_SERVE_TOKEN.",
)
@click.option("--show-bodies", is_flag=True, help="Show e-mail bodies on the failed page.")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A Host name answered beside localhost, 127.0.0.1 and [::1] (repeat it); "
    "others get a 400. Env MAILSPOOL_ALLOWED_HOSTS (comma-separated).",
)
@store_option
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    token: str | None,
    show_bodies: bool,
    allowed_hosts: tuple[str, ...],
    store: str | None,
) -> None:
    """The dashboard and /metrics for a store (needs mailspool[serve])."""
    try:
        from mailspool.web.security import require_token_for
        from mailspool.web.server import serve as run_server
    except ImportError as err:
        raise click.ClickException(
            f"serve needs mailspool[serve] (pip install 'mailspool[serve]'): {err}"
        ) from None
    with _errors():
        names = ",".join(allowed_hosts) or None
        settings = _settings(ctx, store=store, serve_token=token, allowed_hosts=names)
        with open_store(settings.store) as the_store:
            require_token_for(host, settings.serve_token)
            click.echo(
                f"mailspool dashboard: http://{_url_host(host)}:{port}/ for {the_store.url} "
                "(Ctrl-C to stop)",
                err=True,
            )
            run_server(
                the_store,
                host=host,
                port=port,
                token=settings.serve_token,
                show_bodies=show_bodies,
                allowed_hosts=settings.allowed_hosts,
            )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


cli.add_command(feedback_cli.suppression)
cli.add_command(feedback_cli.trace)
cli.add_command(feedback_cli.events)


def _register_optional_commands() -> None:
    try:
        from mailspool.aws.cli import aws  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return
    cli.add_command(aws)


def main(argv: list[str] | None = None) -> None:
    """The console script's entry point."""
    _register_optional_commands()
    cli.main(args=argv, prog_name="mailspool")
