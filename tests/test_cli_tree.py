"""The CLI is one package whose options for settings are made from the settings table.

Walks every command (``mailspool``, ``mailspool aws``, ``flask mailspool`` and
``manage.py mailspool_worker``): an option that names a setting (by its keyword or by
its variable in its help) is the row's flag, checked by the row's rule, with the row's
help; ``mailspool --help`` lists every command group; the package keeps small modules.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mailspool.cli import cli
from mailspool.cli import command as cli_command
from mailspool.cli.argparse_options import add_options
from mailspool.cli.aws import aws
from mailspool.cli.options import Checked
from mailspool.cli.worker import worker
from mailspool.config import SETTINGS, SETTINGS_BY_NAME
from mailspool.settings_docs import option_help

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mailspool"

#: the command groups and commands ``mailspool --help`` lists (aws: with mailspool[aws])
COMMANDS = {
    "aws",
    "bounces",
    "cancel",
    "demo",
    "erase",
    "events",
    "failed",
    "gc",
    "quarantine",
    "send",
    "serve",
    "status",
    "suppression",
    "trace",
    "webhooks",
    "worker",
}

#: options whose keyword is a setting's name but which set something else
NOT_SETTINGS = {
    # the CloudFormation stack's Sender parameter, not this machine's MAILSPOOL_SENDER
    ("aws", "template", "sender"),
}

#: how a help names the variable an option falls back to
_ENV = re.compile(r"\b[Ee]nv (MAILSPOOL_[A-Z_]+)\b")


def _options(
    command: click.Command, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], click.Option]]:
    for param in command.params:
        if isinstance(param, click.Option):
            yield (*path, str(param.name)), param
    if isinstance(command, click.Group):  # click's own listing: the root loads lazily
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None, name
            yield from _options(sub, (*path, name))


def _every_option() -> list[tuple[tuple[str, ...], click.Option]]:
    return [*_options(cli, ()), *_options(aws, ("aws",))]


def _setting_named(key: tuple[str, ...], option: click.Option) -> str | None:
    """The setting an option names: by its keyword, or by the variable its help names
    as its fallback (``env MAILSPOOL_STORE``)."""
    if key in NOT_SETTINGS:
        return None
    if option.name in SETTINGS_BY_NAME:
        return option.name
    envs = {row.env: row.name for row in SETTINGS}
    named = [envs[env] for env in _ENV.findall(option.help or "") if env in envs]
    return named[0] if named else None


def test_every_option_that_sets_a_setting_is_made_from_its_row() -> None:
    checked = 0
    for key, option in _every_option():
        name = _setting_named(key, option)
        if name is None:
            continue
        row = SETTINGS_BY_NAME[name]
        where = " ".join(key)
        assert option.name == row.name, where
        assert isinstance(option.type, Checked), where
        assert option.type.rule is row.parse, where
        assert option.help == option_help(row, repeatable=option.multiple), where
        assert row.env in (option.help or ""), where
        assert row.rule in (option.help or ""), where
        checked += 1
    assert checked >= 30  # --store alone is on every store command


def test_only_settings_and_the_poll_interval_are_checked_by_a_rule() -> None:
    for key, option in _every_option():
        if _setting_named(key, option) is None and isinstance(option.type, Checked):
            assert key == ("worker", "poll_interval")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--store", " "], "store must be non-empty text, got ' '"),
        (["worker", "--concurrency", "0"], "concurrency must be a whole number >= 1, got '0'"),
        (["serve", "--token", ""], "serve_token must be non-empty text, got a value of type str"),
    ],
)
def test_a_setting_flag_fails_as_its_variable_does(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output


def test_flask_mailspool_runs_the_same_command_objects() -> None:
    from mailspool.cli.flask_group import mailspool_group

    for name, command in mailspool_group.commands.items():
        assert command is cli_command(name)


def test_manage_py_takes_the_worker_options_as_the_cli_defines_them() -> None:
    from tests import django_settings

    django_settings.configure()
    from django.core.management import load_command_class

    command = load_command_class("mailspool.integrations.django_app", "mailspool_worker")
    parser = command.create_parser("manage.py", "mailspool_worker")
    options = {str(p.name): p for p in worker.params if isinstance(p, click.Option)}
    for action in parser._actions:
        if action.dest in ("drain", "poll_interval", "retry_base"):
            assert action.option_strings == options[action.dest].opts
            assert action.help == options[action.dest].help
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="retry_base must be a finite number of seconds > 0"):
        parser.parse_args(["--retry-base", "0"])
    assert parser.parse_args(["--retry-base", "2.5"]).retry_base == 2.5


def test_argparse_options_report_the_rule() -> None:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_options(parser, worker, ["max_rate", "poll_interval"])
    assert parser.parse_args(["--max-rate", "unlimited"]).max_rate == "unlimited"
    with pytest.raises(argparse.ArgumentError, match="max_rate must be a finite number > 0"):
        parser.parse_args(["--max-rate", "0"])
    with pytest.raises(argparse.ArgumentError, match="--poll-interval must be a finite number"):
        parser.parse_args(["--poll-interval", "nan"])


def test_mailspool_help_lists_every_command_group() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    listed = result.stdout.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    names = {line.split()[0] for line in listed.splitlines() if line.startswith("  ")}
    assert names == COMMANDS
    # [aws] is installed here: its group is listed
    assert set(cli.list_commands(click.Context(cli))) == COMMANDS


def test_a_command_imports_only_what_it_needs() -> None:
    """``import mailspool`` and ``mailspool worker`` leave the rest unloaded (start-up of
    every drain, and of a Lambda cold start)."""
    probe = (
        "import sys, mailspool; from mailspool.cli import command\n"
        "bare = {m for m in sys.modules if m.startswith('mailspool.')}\n"
        "command('worker')\n"
        "print(sorted(bare)); print('imaplib' in sys.modules, 'mailspool.cli.bounces' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    bare, worker = result.stdout.splitlines()
    assert "mailspool.config" not in bare
    assert "mailspool.producer.api" not in bare
    assert worker == "False False"


def test_the_cli_lives_in_one_package() -> None:
    for folder in ("feedback", "aws", "integrations"):
        for path in (PACKAGE / folder).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"click\.(command|group|option|argument)\(", text), path
