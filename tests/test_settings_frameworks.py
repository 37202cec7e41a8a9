"""Settings mistakes are caught when a Django or Flask app starts, not at its first
request: ``manage.py check`` reports a misspelt key with the closest name, Flask's
``init_app`` refuses one, and ``flask mailspool ...`` says so in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import django_settings

django_settings.configure()

from django.core.management import call_command  # noqa: E402
from django.core.management.base import SystemCheckError  # noqa: E402
from django.test import override_settings  # noqa: E402
from flask import Flask  # noqa: E402

from mailspool.errors import ConfigurationError  # noqa: E402
from mailspool.integrations.django import load_settings  # noqa: E402
from mailspool.integrations.flask import Mailspool  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def check_output() -> str:
    with pytest.raises(SystemCheckError) as caught:
        call_command("check", "--tag", "mailspool")
    return str(caught.value)


def test_manage_py_check_reports_a_misspelt_key_with_the_closest_name() -> None:
    with override_settings(MAILSPOOL={"TRANSPROT": "smtp://mail.example.com"}):
        report = check_output()
    assert "(mailspool.E001) unknown mailspool setting MAILSPOOL['TRANSPROT']" in report
    assert "HINT: did you mean MAILSPOOL['TRANSPORT']?" in report


def test_manage_py_check_reports_every_bad_value_with_its_rule() -> None:
    bad = {"MAX_RATE": 0, "CONCURRENCY": 0, "MAX_ATTEMPTS": -3, "ON_COMMIT": "yes"}
    with override_settings(MAILSPOOL=bad):
        report = check_output()
    assert "MAILSPOOL['MAX_RATE'] must be a finite number > 0 (or 'unlimited'), got 0" in report
    assert "MAILSPOOL['CONCURRENCY'] must be a whole number >= 1, got 0" in report
    assert "MAILSPOOL['MAX_ATTEMPTS'] must be a whole number >= 1 and <= 100, got -3" in report
    assert "MAILSPOOL['ON_COMMIT'] must be True or False, got 'yes'" in report


def test_manage_py_check_passes_a_good_dict_and_the_glue_s_own_keys() -> None:
    good = {"STORE": "file:///tmp/x", "CONCURRENCY": 4, "ON_COMMIT": False}
    with override_settings(MAILSPOOL=good):
        call_command("check", "--tag", "mailspool")


def test_the_django_dict_is_checked_like_every_other_source() -> None:
    with (
        override_settings(MAILSPOOL={"MAX_RATE": float("nan")}),
        pytest.raises(ConfigurationError, match=r"MAILSPOOL\['MAX_RATE'\] must be a finite"),
    ):
        load_settings()


def test_the_management_command_checks_its_flag() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="retry_base must be a finite number"):
        call_command("mailspool_worker", "--drain", "--retry-base", "nan")


def test_flask_init_app_refuses_an_unknown_key_with_the_closest_name() -> None:
    app = Flask(__name__)
    app.config["MAILSPOOL_STOER"] = "file:///tmp/x"
    with pytest.raises(ConfigurationError, match=r"did you mean app.config\['MAILSPOOL_STORE'\]"):
        Mailspool(app)


def test_flask_init_app_refuses_a_bad_value_wherever_it_comes_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = Flask(__name__)
    app.config["MAILSPOOL_CONCURRENCY"] = 0
    with pytest.raises(ConfigurationError, match=r"app.config\['MAILSPOOL_CONCURRENCY'\]"):
        Mailspool().init_app(app)
    monkeypatch.setenv("MAILSPOOL_SOFT_BOUNCE_DAYS", "inf")
    with pytest.raises(ConfigurationError, match="MAILSPOOL_SOFT_BOUNCE_DAYS must be"):
        Mailspool(Flask(__name__))


def flask_command(tmp_path: Path, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app blog mailspool ARGS`` on an app whose config has ``config``."""
    (tmp_path / "blog.py").write_text(
        textwrap.dedent(
            f"""
            from flask import Flask
            from mailspool.integrations.flask import Mailspool
            app = Flask(__name__)
            app.config["MAILSPOOL_STORE"] = "file://{tmp_path / "spool"}"
            {config}
            Mailspool(app)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSPOOL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(tmp_path)])
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "blog", "mailspool", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )


def test_flask_mailspool_prints_one_line_for_an_unknown_key(tmp_path: Path) -> None:
    done = flask_command(tmp_path, 'app.config["MAILSPOOL_TRANSPROT"] = "console:"', "status")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: unknown mailspool setting app.config['MAILSPOOL_TRANSPROT']; "
        "did you mean app.config['MAILSPOOL_TRANSPORT']?"
    )


def test_flask_mailspool_checks_its_flags_like_mailspool(tmp_path: Path) -> None:
    done = flask_command(tmp_path, "", "worker", "--drain", "--max-rate", "0")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "Invalid value for '--max-rate': max_rate must be a finite number > 0" in done.stderr


def test_the_django_middleware_checks_the_settings_when_the_server_loads_it() -> None:
    from mailspool.integrations.django import MailspoolMiddleware

    with (
        override_settings(MAILSPOOL={"STOER": "file:///tmp/x"}),
        pytest.raises(ConfigurationError, match=r"did you mean MAILSPOOL\['STORE'\]"),
    ):
        MailspoolMiddleware(lambda request: None)


def test_the_wsgi_and_asgi_middleware_load_their_settings_once_when_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mailspool.integrations import asgi, wsgi

    monkeypatch.setenv("MAILSPOOL_MAX_RATE", "nan")
    for middleware in (wsgi.MailspoolMiddleware, asgi.MailspoolMiddleware):
        with pytest.raises(ConfigurationError, match="MAILSPOOL_MAX_RATE must be a finite"):
            middleware(lambda *args: [])


def test_the_management_command_checks_its_poll_interval() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--poll-interval must be a finite number of seconds"):
        call_command("mailspool_worker", "--poll-interval", "nan")
