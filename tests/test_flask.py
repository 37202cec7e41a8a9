"""The Flask extension: a scope per request, settings from app.config."""

from __future__ import annotations

from pathlib import Path

import orjson
from flask import Flask

import mailspool
from mailspool.integrations.flask import Mailspool, load_settings
from tests import framework_common as common
from tests.fixtures.smtp_server import SMTPSink


def make_app(spool: Path, smtp_server: SMTPSink) -> Flask:
    app = Flask(__name__)
    app.config.update(
        MAILSPOOL_STORE=f"file://{spool}",
        MAILSPOOL_PRIORITY_TRANSPORT=smtp_server.url,
        MAILSPOOL_MIDDLEWARE_MODE="before",
    )
    Mailspool(app)

    @app.get("/notify")
    def notify() -> str:
        common.send_from_view()
        return "ok"

    @app.get("/boom")
    def boom() -> str:
        mailspool.send_message(common.notification(1), priority=False)
        raise RuntimeError("boom")

    return app


def test_view_hands_off_500_and_sends_the_priority_one(spool: Path, smtp_server: SMTPSink) -> None:
    response = make_app(spool, smtp_server).test_client().get("/notify")

    assert response.status_code == 200
    common.assert_priority_only(smtp_server)
    assert len(common.queued_files(spool)) == 1
    common.drain(spool, smtp_server)
    common.assert_followers_once_whole(smtp_server)


def test_a_view_that_raises_drops_its_deferred_mail(spool: Path, smtp_server: SMTPSink) -> None:
    """Flask turns the exception into a 500 before the middleware sees it: the status
    is what marks the request failed."""
    app = make_app(spool, smtp_server)

    response = app.test_client().get("/boom")

    assert response.status_code == 500
    assert common.queued_files(spool) == []


def test_a_view_that_raises_still_writes_with_on_error_write(
    spool: Path, smtp_server: SMTPSink
) -> None:
    app = make_app(spool, smtp_server)
    app.config["MAILSPOOL_ON_ERROR"] = "write"
    Mailspool(app)  # the settings are read at init

    response = app.test_client().get("/boom")

    assert response.status_code == 500
    assert len(common.queued_files(spool)) == 1


def test_config_keys_map_to_settings(spool: Path, smtp_server: SMTPSink) -> None:
    app = make_app(spool, smtp_server)
    app.config["MAILSPOOL_EMAILS_PER_FILE"] = 25

    settings = load_settings(app.config)

    assert settings.store == f"file://{spool}"
    assert settings.emails_per_file == 25
    assert app.extensions["mailspool"] is not None


def test_flask_mailspool_worker_reads_app_config(spool: Path, smtp_server: SMTPSink) -> None:
    app = make_app(spool, smtp_server)
    app.config["MAILSPOOL_TRANSPORT"] = smtp_server.url
    app.test_client().get("/notify")
    runner = app.test_cli_runner()

    status = orjson.loads(runner.invoke(args=["mailspool", "status", "--json"]).stdout)
    assert (status["store"], status["pending"]) == (f"file://{spool}", 500)
    drained = runner.invoke(args=["mailspool", "worker", "--drain", "--processes", "1"])
    assert drained.exit_code == 0, drained.output
    assert f"500 sent, 0 failed, 0 quarantined (store file://{spool})" in drained.stdout
    common.assert_followers_once_whole(smtp_server)
    assert runner.invoke(args=["mailspool", "failed", "list"]).stdout == "no failed e-mails\n"
