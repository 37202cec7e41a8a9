"""The ``mailspool`` command: send, cancel, erase, worker, status, failed, quarantine, gc,
demo, serve, suppression, trace, events, bounces, webhooks (and aws, with [aws]).

One module per command or command group, in this package; this one holds the root group
and the entry point. ``mailspool.cli.common`` holds what the commands share and
``mailspool.cli.options`` the options generated from the settings table. ``flask
mailspool`` (``mailspool.cli.flask_group``) and ``manage.py mailspool_worker`` use the
same definitions. As before the package, ``mailspool.cli.worker`` (``send``, ``status``...)
is the command itself: reach a command's module with ``from mailspool.cli.worker import``.

Every option that has a setting falls back to its ``MAILSPOOL_*`` variable, then to the
embedded default (a spool and an outbox under ``$XDG_DATA_HOME/mailspool``). Every
command that opens a store names it (a ``store:`` line on stderr; ``"store"`` in --json).
Errors are one line on stderr and a non-zero exit: 1 for a failure, 2 for bad usage,
3 (``send``) when the configured store refused the batch and it went to the fallback.
"""

from __future__ import annotations

import logging

import click

from mailspool._version import __version__
from mailspool.cli.bounces import bounces
from mailspool.cli.cancel import cancel_command
from mailspool.cli.demo import demo
from mailspool.cli.erase import erase_command
from mailspool.cli.events import events
from mailspool.cli.failed import failed
from mailspool.cli.gc import gc
from mailspool.cli.quarantine import quarantine
from mailspool.cli.send import EXIT_FALLBACK, send
from mailspool.cli.serve import serve
from mailspool.cli.status import status
from mailspool.cli.suppression import suppression
from mailspool.cli.trace import trace
from mailspool.cli.webhooks import webhooks
from mailspool.cli.worker import worker
from mailspool.settings_docs import environment_help

__all__ = ["EXIT_FALLBACK", "cli", "main"]

# "\b" keeps click from re-wrapping the list into one paragraph.
_ENV_HELP = "\b\n" + environment_help()


@click.group(epilog=f"Environment:\n\n{_ENV_HELP}")
@click.version_option(__version__, prog_name="mailspool")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Take e-mail sending out of the web request."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)


for _command in (
    send,
    cancel_command,
    erase_command,
    worker,
    status,
    failed,
    quarantine,
    gc,
    demo,
    serve,
    suppression,
    trace,
    events,
    bounces,
    webhooks,
):
    cli.add_command(_command)


def _register_optional_commands() -> None:
    try:
        from mailspool.cli.aws import aws
    except ImportError:
        return
    cli.add_command(aws)


def main(argv: list[str] | None = None) -> None:
    """The console script's entry point."""
    _register_optional_commands()
    cli.main(args=argv, prog_name="mailspool")
