"""What every command shares: the ``--store`` option, the settings from the flags given,
mailspool's errors as one line, opening the store while naming it, JSON output, ``list``
commands, "not found" messages and durations with a unit."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import click
import orjson

from mailspool.cli.options import setting_option
from mailspool.config import Settings
from mailspool.errors import ConfigurationError, MailspoolError
from mailspool.spool.sealed_store import sealed
from mailspool.stores import Store, open_store

__all__ = [
    "FRAMEWORK_META",
    "Listing",
    "errors",
    "list_command",
    "load_settings",
    "not_found",
    "opened_store",
    "parse_duration",
    "print_json",
    "say_store",
    "settings_from",
    "store_option",
]

#: ``--store URL``, from the row of the setting ``store``
store_option = setting_option("store", metavar="URL")

#: where a framework's command group (``flask mailspool``) leaves its settings loader
#: (flags as keyword arguments -> Settings) for the commands it runs:
#: ``click.Context.meta`` is shared by a command and its group
FRAMEWORK_META = "mailspool.framework"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

T = TypeVar("T")


@contextmanager
def opened_store(store: str | None, *, quiet: bool = False) -> Iterator[Store]:
    """The store of ``--store`` or the settings, named on stderr unless ``quiet`` (the
    --json output names it itself); mailspool's errors as one clean line."""
    try:
        settings = load_settings(store=store)
        if not quiet:
            say_store(settings.store)
        with sealed(open_store(settings.store), settings.encryption_key) as the_store:
            yield the_store
    except MailspoolError as err:
        raise click.ClickException(str(err)) from err


def load_settings(**explicit: Any) -> Settings:
    """Settings from the flags given (None: not given), then the framework's (under
    ``flask mailspool``: its loader), then the environment; a mistake is one line."""
    context = click.get_current_context(silent=True)
    load: Callable[..., Settings] = (
        Settings.load if context is None else context.meta.get(FRAMEWORK_META, Settings.load)
    )
    given = {name: value for name, value in explicit.items() if value is not None}
    try:
        return load(**given)
    except ConfigurationError as err:
        raise click.ClickException(str(err)) from err


def settings_from(opts: dict[str, Any], *names: str) -> Settings:
    """Settings from the named options of a command (None: not given), then the rest."""
    return load_settings(**{name: opts[name] for name in names})


@contextmanager
def errors() -> Iterator[None]:
    """Turn mailspool's errors into one clear line and exit status 1."""
    try:
        yield
    except MailspoolError as err:
        raise click.ClickException(str(err)) from err


def say_store(url: str) -> None:
    """One line on stderr naming the store a command reads or writes."""
    click.echo(f"store: {url}", err=True)


def print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """What a ``list`` command prints: with ``--json`` what ``json`` makes of the items;
    else a ``line`` per item under ``header``, or ``empty`` when there is none."""

    items: Sequence[T]
    line: Callable[[T], str]
    json: Callable[[Sequence[T]], Any]
    header: str | None = None
    empty: str | None = None

    def print(self, as_json: bool) -> None:
        if as_json:
            print_json(self.json(self.items))
            return
        if not self.items:
            if self.empty is not None:
                click.echo(self.empty)
            return
        if self.header is not None:
            click.echo(self.header)
        for item in self.items:
            click.echo(self.line(item))


def list_command(
    group: click.Group, json_help: str, *options: Callable[[Any], Any]
) -> Callable[[Callable[..., Listing[Any]]], click.Command]:
    """``GROUP list [--store URL] [--json]``, from a function that reads the opened store
    (named on stderr unless ``--json``) and returns its Listing; its docstring is the help.
    ``options``: click options of its own, passed to the function by name."""

    def decorate(read: Callable[..., Listing[Any]]) -> click.Command:
        @store_option
        @click.option("--json", "as_json", is_flag=True, help=json_help)
        def command(store: str | None, as_json: bool, **extra: Any) -> None:
            with opened_store(store, quiet=as_json) as the_store:
                listing = read(the_store, **extra)
            listing.print(as_json)

        for option in options:
            command = option(command)
        return group.command("list", help=inspect.getdoc(read))(command)

    return decorate


def not_found(what: str, item_id: str, store: Store, listing: str) -> click.ClickException:
    """The one wording of "not found": what, the id given, the store, where to look."""
    return click.ClickException(f"no {what} {item_id!r} in {store.url} (see 'mailspool {listing}')")


def parse_duration(value: str) -> float:
    """``30s``, ``30m``, ``12h``, ``7d``, ``2w`` -> seconds; a bare number is refused,
    since ``7`` could mean seconds or days."""
    number, unit = value[:-1].strip(), value[-1:].lower()
    try:
        seconds = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        raise click.BadParameter(
            f"{value!r} needs a unit: a number then s, m, h, d or w (e.g. 30m, 12h, 7d)"
        ) from None
    if seconds < 0 or seconds != seconds:
        raise click.BadParameter(f"{value!r}: the duration must be 0 or more")
    return seconds
