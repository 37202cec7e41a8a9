"""The options that set a setting, made from its row of the settings table
(``mailspool.config.SETTINGS``): ``setting_option("max_rate")`` is ``--max-rate``, checked
by the row's rule (the one every other source passes, with the same error), its help the
row's meaning, rule, variable and default. No such option is written by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from mailspool.config import SETTINGS_BY_NAME, Rule, SettingError
from mailspool.settings_docs import option_help

__all__ = ["Checked", "flag_of", "setting_option"]

FC = TypeVar("FC", bound=Callable[..., Any] | click.Command)


class Checked(click.ParamType[Any]):
    """A flag checked by a rule of ``mailspool.config``: for a flag that sets a setting,
    that setting's rule, the one every other source passes, so ``--max-rate 0`` fails as
    ``MAILSPOOL_MAX_RATE=0`` does, naming the setting and the rule."""

    def __init__(self, name: str, rule: Rule) -> None:
        self.name = name
        self.rule = rule

    def check(self, label: str, value: Any) -> Any:
        """The value by the rule (``SettingError`` naming ``label``). "unlimited" reads as
        None, which Settings.load takes for "not given": the text is kept, so the flag
        still wins over MAILSPOOL_MAX_RATE."""
        checked = self.rule(label, value)
        return value if checked is None else checked

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.check(self.name, value)
        except SettingError as err:
            self.fail(str(err), param, ctx)


def flag_of(name: str) -> str:
    """The flag of a setting: ``max_rate`` -> ``--max-rate``."""
    return "--" + name.replace("_", "-")


def setting_option(
    name: str, flag: str | None = None, *, metavar: str | None = None, multiple: bool = False
) -> Callable[[FC], FC]:
    """The option that sets the setting ``name`` (the command's keyword ``name``; None:
    not given, so the framework's value, the variable or the default applies), made
    from its row. ``flag`` where the command's flag predates the rule (``--from`` for
    ``sender``); ``multiple``: repeatable, each value checked by the rule."""
    row = SETTINGS_BY_NAME[name]
    return click.option(
        flag or flag_of(name),
        name,
        type=Checked(name, row.parse),
        metavar=metavar,
        multiple=multiple,
        help=option_help(row, repeatable=multiple),
    )
