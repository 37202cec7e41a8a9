"""Options of a ``mailspool`` command as arguments of an ``argparse`` parser, for the
commands that are not click's (``manage.py mailspool_worker``): the same flags, help,
checks and errors as the click command's, not a copy of them."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

import click

from mailspool.cli.options import Checked
from mailspool.config import SETTINGS_BY_NAME, SettingError

__all__ = ["add_options"]


def add_options(
    parser: argparse.ArgumentParser, command: click.Command, names: Iterable[str]
) -> None:
    """Add the options of ``command`` named ``names`` (their keywords) to ``parser``:
    a flag stays a flag, a value passes the option's own check (None: not given)."""
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    for name in names:
        option = options[name]
        if option.is_flag:
            parser.add_argument(*option.opts, dest=name, action="store_true", help=_help(option))
            continue
        parser.add_argument(
            *option.opts,
            dest=name,
            type=_converter(option),
            default=None,
            metavar=option.metavar,
            help=_help(option),
        )


def _converter(option: click.Option) -> Callable[[str], Any]:
    """The option's check as argparse's ``type``: its error as argparse's message. A
    setting is named as its rule names it (``retry_base must be...``), another flag by
    the flag (``--poll-interval must be...``)."""
    kind = option.type
    label = option.name if option.name in SETTINGS_BY_NAME else option.opts[0]

    def convert(text: str) -> Any:
        try:
            if isinstance(kind, Checked):
                return kind.check(str(label), text)
            return kind.convert(text, option, None)
        except SettingError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        except click.BadParameter as err:
            raise argparse.ArgumentTypeError(err.message) from None

    return convert


def _help(option: click.Option) -> str | None:
    """The option's help, its ``%`` kept from argparse's formatting (``5%``)."""
    return None if option.help is None else option.help.replace("%", "%%")
