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
from typing import Any

import click

from mailspool._version import __version__

__all__ = ["EXIT_FALLBACK", "cli", "main"]

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


class _Commands(dict[str, click.Command]):
    """The root group's commands, each imported on first lookup (click reads them
    through ``get``, iteration and ``[]``)."""

    def __init__(self) -> None:
        super().__init__()
        self._optional: dict[str, bool] = {}

    def _known(self, name: str) -> bool:
        if name in _COMMANDS or dict.__contains__(self, name):
            return True
        if name not in _OPTIONAL:
            return False
        if name not in self._optional:  # import it once to learn whether the extra is there
            self._optional[name] = _importable(_OPTIONAL[name])
        return self._optional[name]

    def __missing__(self, name: str) -> click.Command:
        if not self._known(name):
            raise KeyError(name)
        module, _, attribute = {**_COMMANDS, **_OPTIONAL}[name].partition(":")
        with _long_lived_objects():
            command: click.Command = getattr(import_module(module), attribute)
        dict.__setitem__(self, name, command)
        return command

    def get(self, name: str, default: object = None) -> click.Command | None:  # type: ignore[override]
        return self[name] if self._known(name) else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._known(name)

    def __iter__(self) -> Iterator[str]:
        names = {*_COMMANDS, *dict.keys(self), *filter(self._known, _OPTIONAL)}
        return iter(sorted(names))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def keys(self) -> Any:
        return list(self)

    def items(self) -> Any:
        return [(name, self[name]) for name in self]

    def values(self) -> Any:
        return [self[name] for name in self]


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


def _importable(where: str) -> bool:
    try:
        import_module(where.partition(":")[0])
    except ImportError:
        return False
    return True


class _Root(click.Group):
    """The root group; its epilog lists every variable, read from the settings table
    when help is shown (not at import: ``mailspool worker`` does not need it)."""

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


cli.commands = _Commands()


def main(argv: list[str] | None = None) -> None:
    """The console script's entry point."""
    cli.main(args=argv, prog_name="mailspool")
