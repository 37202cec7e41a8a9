"""``manage.py mailspool_worker [--drain]``: ``mailspool worker`` with Django's settings.

The same loop as the CLI (``mailspool.triggers.local``), configured from
``settings.MAILSPOOL`` first, then the ``MAILSPOOL_*`` variables.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import MailspoolError
from mailspool.feedback.settings import unsubscribe_links
from mailspool.integrations.django import load_settings
from mailspool.stores import open_store
from mailspool.transports import open_transport
from mailspool.triggers.local import DrainReport, drain, run_forever


class Command(BaseCommand):
    help = "Deliver queued mailspool batches: until stopped, or once with --drain."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--drain", action="store_true", help="Deliver everything, then exit.")
        parser.add_argument("--poll-interval", type=float, default=0.05)
        parser.add_argument("--retry-base", type=float, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = self._run(drain_only=options["drain"], options=options)
        except MailspoolError as err:
            raise CommandError(str(err)) from err
        if report is not None:
            self.stdout.write(
                f"drained {len(report.batches)} batch(es): {report.sent} sent, "
                f"{report.failed} failed"
            )

    def _run(self, *, drain_only: bool, options: dict[str, Any]) -> DrainReport | None:
        settings = load_settings()
        if options["retry_base"] is not None:
            settings = replace(settings, retry_base=options["retry_base"])
        store = open_store(settings.store)
        store.check()
        transport = open_transport(settings.transport)
        worker = Worker(
            store,
            transport,
            options=WorkerOptions(
                concurrency=settings.concurrency,
                max_attempts=settings.max_attempts,
                retry_base=settings.retry_base,
                default_sender=settings.sender,
            ),
            max_rate=settings.max_rate,
            unsubscribe=unsubscribe_links(settings),
        )
        _stop_on_signals(worker)
        try:
            if drain_only:
                return drain(worker, fallback_base=settings.fallback_store)
            run_forever(
                worker,
                poll_interval=options["poll_interval"],
                fallback_base=settings.fallback_store,
            )
            return None
        finally:
            worker.close()
            transport.close()
            store.close()


def _stop_on_signals(worker: Worker) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
