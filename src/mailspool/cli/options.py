"""Options checked by the rules of ``mailspool.config``: a flag that sets a setting is
checked by that setting's rule, the one every other source passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from mailspool.config import SETTINGS_BY_NAME, Rule, SettingError

__all__ = ["Checked", "setting_option"]

FC = TypeVar("FC", bound=Callable[..., Any] | click.Command)


class Checked(click.ParamType[Any]):
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


def setting_option(flag: str, help: str) -> Callable[[FC], FC]:
    """``--max-rate`` for the setting ``max_rate``: its rule checks it, its variable is
    the fallback; both are named in the help."""
    name = flag.removeprefix("--").replace("-", "_")
    row = SETTINGS_BY_NAME[name]
    return click.option(
        flag, name, type=Checked(name, row.parse), help=f"{help}: {row.rule}; env {row.env}."
    )
