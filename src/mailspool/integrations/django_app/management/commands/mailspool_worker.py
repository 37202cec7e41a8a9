"""``manage.py mailspool_worker [--drain]``: ``mailspool worker`` with Django's settings.

The same loop as the CLI (``mailspool.triggers.local``), the same worker
(``mailspool.delivery.factory``) and the same options (``mailspool.cli.worker``'s, by
``mailspool.cli.argparse_options``), configured from ``settings.MAILSPOOL`` first, then
the ``MAILSPOOL_*`` variables.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailspool.cli.argparse_options import add_options
from mailspool.cli.worker import worker as worker_command
from mailspool.delivery.factory import open_worker, poll_interval_for, stop_on_signals
from mailspool.delivery.report import BatchReport
from mailspool.errors import MailspoolError
from mailspool.integrations.django import load_settings
from mailspool.triggers.local import DrainReport, drain, run_forever

#: the options of ``mailspool worker`` this command takes
_OPTIONS = ("drain", "poll_interval", "retry_base")


class Command(BaseCommand):
    help = "Deliver queued mailspool batches: until stopped, or once with --drain."
    _store = ""

    def add_arguments(self, parser: CommandParser) -> None:
        # mailspool worker's own options: the same flags, help and checks
        add_options(parser, worker_command, _OPTIONS)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = self._run(drain_only=options["drain"], options=options)
        except MailspoolError as err:
            raise CommandError(str(err)) from err
        if report is not None:
            self.stdout.write(report.summary(self._store))

    def _run(self, *, drain_only: bool, options: dict[str, Any]) -> DrainReport | None:
        settings = load_settings(retry_base=options["retry_base"])
        self._store = settings.store
        on_batch = self._batch_line if options["verbosity"] >= 1 else None
        with open_worker(settings) as worker:
            stop_on_signals(worker)
            if drain_only:
                return drain(worker, on_batch=on_batch, fallback_base=settings.fallback_store)
            poll_interval = options["poll_interval"]
            run_forever(
                worker,
                poll_interval=poll_interval_for(worker.store)
                if poll_interval is None
                else poll_interval,
                on_batch=on_batch,
                fallback_base=settings.fallback_store,
            )
            return None

    def _batch_line(self, report: BatchReport) -> None:
        """One line per batch (``-v 0`` silences it), as ``mailspool worker`` prints."""
        if report.ran_here:
            self.stderr.write(report.line())
