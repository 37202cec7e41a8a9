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

import gc as collector  # not ``gc``: that name is the ``mailspool gc`` command's module
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module

import click

from mailspool._version import __version__

__all__ = ["EXIT_FALLBACK", "cli", "command", "main"]

#: ``mailspool send`` exit status when the configured store refused the batch and it
#: was written to the local fallback store instead (``mailspool worker`` moves it back).
EXIT_FALLBACK = 3

#: Each command and the module that defines it, imported when the command is used (or
#: listed by --help): ``mailspool worker`` then loads the worker, not the IMAP reader.
_COMMANDS = {
    "send": "mailspool.cli.send:send",
    "cancel": "mailspool.cli.cancel:cancel_command",
    "erase": "mailspool.cli.erase:erase_command",
    "worker": "mailspool.cli.worker:worker",
    "status": "mailspool.cli.status:status",
    "failed": "mailspool.cli.failed:failed",
    "quarantine": "mailspool.cli.quarantine:quarantine",
    "gc": "mailspool.cli.gc:gc",
    "demo": "mailspool.cli.demo:demo",
    "serve": "mailspool.cli.serve:serve",
    "suppression": "mailspool.cli.suppression:suppression",
    "trace": "mailspool.cli.trace:trace",
    "events": "mailspool.cli.events:events",
    "bounces": "mailspool.cli.bounces:bounces",
    "webhooks": "mailspool.cli.webhooks:webhooks",
}
#: Commands of an extra: listed only when their module imports (``aws``: ``[aws]``).
_OPTIONAL = {"aws": "mailspool.cli.aws:aws"}


@contextmanager
def _long_lived_objects() -> Iterator[None]:
    """Importing a command's modules makes objects that live as long as the process:
    the collector's passes over them during the import are wasted (a tenth of a drain's
    start-up), and once frozen (``gc.freeze``) they are left out of its later ones (and
    stay shared with the delivery processes forked after)."""
    enabled = collector.isenabled()
    collector.disable()
    try:
        yield
    finally:
        collector.freeze()
        if enabled:
            collector.enable()


def _load(where: str) -> click.Command | None:
    """The command at ``module:attribute``; None when its module cannot be imported
    (an extra that is not installed)."""
    module, _, attribute = where.partition(":")
    with _long_lived_objects():
        try:
            loaded = import_module(module)
        except ImportError:
            if where in _OPTIONAL.values():
                return None
            raise
    command: click.Command = getattr(loaded, attribute)
    return command


class _Root(click.Group):
    """The root group: each command is imported when it is looked up (click's lazy
    loading of subcommands, ``list_commands`` and ``get_command``); its epilog lists
    every variable, read from the settings table when help is shown."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        optional = [name for name in _OPTIONAL if self.get_command(ctx, name) is not None]
        return sorted({*_COMMANDS, *optional, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = _COMMANDS.get(cmd_name) or _OPTIONAL.get(cmd_name)
        if cmd_name not in self.commands and where is not None:
            loaded = _load(where)
            if loaded is not None:
                self.add_command(loaded, cmd_name)
        return self.commands.get(cmd_name)

    @property
    def epilog(self) -> str:
        from mailspool.settings_docs import environment_help

        # "\b" keeps click from re-wrapping the list into one paragraph.
        return "Environment:\n\n\b\n" + environment_help()

    @epilog.setter
    def epilog(self, value: str | None) -> None:
        """click sets it on creation; the table's list is the epilog."""


@click.group(cls=_Root)
@click.version_option(__version__, prog_name="mailspool")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Take e-mail sending out of the web request."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)


def command(name: str) -> click.Command:
    """The ``mailspool`` command called ``name`` (``flask mailspool`` and the tests take
    the same objects); KeyError when there is none."""
    found = cli.get_command(click.Context(cli), name)
    if found is None:
        raise KeyError(name)
    return found


def main(argv: list[str] | None = None) -> None:
    """The console script's entry point."""
    cli.main(args=argv, prog_name="mailspool")
