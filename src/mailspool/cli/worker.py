"""``mailspool worker``: deliver queued batches, until stopped or once (--drain), in one
or more delivery processes."""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from mailspool.cli.common import errors, settings_from, store_option
from mailspool.cli.options import Checked, setting_option
from mailspool.config import POLL_INTERVAL, Settings
from mailspool.delivery.factory import open_worker, poll_interval_for, stop_on_signals
from mailspool.delivery.steps import OutcomeCallback, OutcomeFunction
from mailspool.delivery.worker import BatchReport, Worker
from mailspool.ops.status import collect_status
from mailspool.stores import Store
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.local import DrainReport, drain, run_forever
from mailspool.triggers.processes import (
    Lending,
    Share,
    default_processes,
    drain_shared,
    run_processes,
)

__all__ = ["worker"]


@click.command()
@click.option("--drain", is_flag=True, help="Deliver everything pending, then exit.")
@store_option
@setting_option("transport", metavar="URL")
@setting_option("concurrency")
@setting_option("max_rate")
@setting_option("max_attempts")
@setting_option("retry_base")
@click.option(
    "--poll-interval",
    type=Checked("poll_interval", POLL_INTERVAL),
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
    with errors():
        names = ("store", "transport", "concurrency", "max_rate", "max_attempts", "retry_base")
        settings = settings_from(opts, *names)
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


def _serve_metrics(worker: Worker, port: int) -> None:
    """``/metrics`` on ``port``, the sends counted by a step (the send path unchanged)."""
    try:
        from mailspool.web.metrics import start_worker_metrics
    except ImportError as err:
        raise click.ClickException(
            f"--metrics-port needs mailspool[serve] (pip install 'mailspool[serve]'): {err}"
        ) from None
    worker.steps.append(start_worker_metrics(worker.store, port))


def _work(settings: Settings, opts: dict[str, Any], share: Share) -> DrainReport | None:
    """One delivery process: its share of the concurrency (and so of the SMTP pool) and
    of the rate; alone, the whole of both."""
    # Over SMTP every process may use the whole concurrency, lent by the idle ones
    # (``processes.Lending``); other transports take their part.
    lends = share.count > 1 and share.board is not None and _is_smtp(settings.transport)
    concurrency = settings.concurrency if lends else share.concurrency(settings.concurrency)
    mine = dataclasses.replace(settings, concurrency=concurrency)
    split: dict[str, Any] = {}
    if share.split_above:
        split |= {"split_above": share.split_above, "split_among": share.count}
    if lends:  # the ledger windows add up to one concurrency, as when split
        split["ledger_window"] = share.concurrency(settings.concurrency)
    with open_worker(mine, **split) as the_worker:
        if lends and isinstance(the_worker.transport, SMTPTransport):
            the_worker.transport.share_connections(Lending(share, settings.concurrency))
        if opts["metrics_port"] is not None:
            _serve_metrics(the_worker, opts["metrics_port"])
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
            if on_outcome is not None:
                the_worker.steps.append(OutcomeCallback(on_outcome))
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
def _progress(store: Store, wanted: bool | None) -> Iterator[OutcomeFunction | None]:
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
