"""``flask mailspool ...``: the ``mailspool`` commands on a Flask app's ``app.config``.

``flask --app blog mailspool worker`` delivers what the app's requests queued, from the
store ``app.config["MAILSPOOL_STORE"]`` names, with the app's transport and limits; the
environment and the command's flags apply as for ``mailspool`` itself.
"""

from __future__ import annotations

import functools

import click
from flask import current_app
from flask.cli import with_appcontext

from mailspool import cli as main_cli
from mailspool.cli.common import FRAMEWORK_META
from mailspool.integrations.flask_settings import load_settings

__all__ = ["mailspool_group"]

_COMMANDS = ("worker", "status", "failed", "quarantine", "gc", "serve")


@click.group("mailspool")
@with_appcontext
@click.pass_context
def mailspool_group(ctx: click.Context) -> None:
    """mailspool's worker, status, failed, quarantine, gc and serve on this app's config."""
    ctx.meta[FRAMEWORK_META] = functools.partial(load_settings, current_app.config)


for _name in _COMMANDS:
    mailspool_group.add_command(main_cli.command(_name))
