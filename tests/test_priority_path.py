"""Priority e-mail through send_mail and `mailspool send`, to a real SMTP server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mailspool
from mailspool.config import Settings
from tests.fixtures.smtp_server import SMTPSink


@pytest.fixture
def settings(spool: Path, smtp_server: SMTPSink) -> Settings:
    return Settings.load(store=f"file://{spool}", priority_transport=smtp_server.url)


def test_a_priority_send_arrives_whole(settings: Settings, smtp_server: SMTPSink) -> None:
    headers = {
        "From": "Jürgen Groß <j@example.de>",
        "Cc": "Cc Person <cc@example.com>",
        "Bcc": "hidden@example.com",
        "Reply-To": "reply@example.com",
        "Content-Type": "text/plain; charset=iso-8859-1",
    }
    with mailspool.request(settings=settings):
        mailspool.send_mail(
            "Ána <ana@example.com>",
            "Réinitialiser le mot de passe",
            "Voilà le lien.",
            headers,
            [("note.txt", b"attached bytes", "text/plain")],
            priority=True,
        )
        [envelope] = smtp_server.envelopes  # arrived before the scope ended
    assert envelope.mail_from == "j@example.de"
    assert sorted(envelope.rcpt_tos) == ["ana@example.com", "cc@example.com", "hidden@example.com"]
    message = envelope.parsed()
    assert str(message["From"]) == "Jürgen Groß <j@example.de>"
    assert str(message["To"]) == "Ána <ana@example.com>"
    assert str(message["Cc"]) == "Cc Person <cc@example.com>"
    assert message["Bcc"] is None
    assert b"hidden@example.com" not in envelope.content
    assert str(message["Reply-To"]) == "reply@example.com"
    assert str(message["Subject"]) == "Réinitialiser le mot de passe"
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content_charset() == "iso-8859-1"
    assert body.get_content().rstrip() == "Voilà le lien."
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "note.txt"
    assert attachment.get_payload(decode=True) == b"attached bytes"


def test_html_and_text_alternatives(settings: Settings, smtp_server: SMTPSink) -> None:
    message = mailspool.Message(
        to=("a@example.com",), subject="Both", text="plain body", html="<p>html body</p>"
    )
    mailspool.send_now(message, settings=settings)
    parsed = smtp_server.messages[0]
    assert parsed.get_body(("plain",)).get_content().rstrip() == "plain body"  # type: ignore[union-attr]
    assert parsed.get_body(("html",)).get_content().rstrip() == "<p>html body</p>"  # type: ignore[union-attr]


def test_ten_priority_sends_use_one_connection(settings: Settings, smtp_server: SMTPSink) -> None:
    for i in range(10):
        with mailspool.request(settings=settings):
            mailspool.send_mail(f"u{i}@example.com", "Code", f"<p>{i}</p>", priority=True)
    assert len(smtp_server.envelopes) == 10
    assert smtp_server.connections == 1


def test_the_connection_is_reopened_after_the_server_dropped_it(
    settings: Settings, smtp_server: SMTPSink
) -> None:
    with mailspool.request(settings=settings):
        mailspool.send_mail("a@example.com", "one", "m", priority=True)
    smtp_server.drop_connections()
    smtp_server.wait_for_disconnects()
    with mailspool.request(settings=settings):
        mailspool.send_mail("b@example.com", "two", "m", priority=True)
    assert [tuple(e.rcpt_tos) for e in smtp_server.envelopes] == [
        ("a@example.com",),
        ("b@example.com",),
    ]
    assert smtp_server.connections == 2


def test_a_failed_priority_send_raises_with_the_answer(
    settings: Settings, smtp_server: SMTPSink
) -> None:
    smtp_server.refuse_recipient("gone@example.com", "550 5.1.1 <gone@example.com>: no such user")
    with (
        mailspool.request(settings=settings),
        pytest.raises(mailspool.PermanentError, match="no such user"),
    ):
        mailspool.send_mail("gone@example.com", "s", "m", priority=True)


def test_cli_send_priority_and_deferred(spool: Path, smtp_server: SMTPSink, tmp_path: Path) -> None:
    attachment = tmp_path / "report.csv"
    attachment.write_text("a,b\n1,2\n")
    env = {
        **os.environ,
        "MAILSPOOL_STORE": f"file://{spool}",
        "MAILSPOOL_PRIORITY_TRANSPORT": smtp_server.url,
    }
    base = [
        sys.executable,
        "-m",
        "mailspool",
        "send",
        "--to",
        "a@example.com",
        "--subject",
        "Report",
    ]
    sent = subprocess.run(
        [*base, "--body", "<b>hi</b>", "--html", "--from", "Me <me@example.com>", "--bcc", "b@example.com",
         "--attach", str(attachment), "--priority"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    [envelope] = smtp_server.envelopes
    assert sorted(envelope.rcpt_tos) == ["a@example.com", "b@example.com"]
    assert [a.get_filename() for a in envelope.parsed().iter_attachments()] == ["report.csv"]
    queued = subprocess.run(
        [*base, "--body", "later", "--deferred"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert queued.returncode == 0, queued.stderr
    assert len(list((spool / "queue").iterdir())) == 1
    bad = subprocess.run(
        [*base, "--body", "x", "--cc", "not an address"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert "not an e-mail address" in bad.stderr
    assert len(list((spool / "queue").iterdir())) == 1  # nothing written


def test_version_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == f"mailspool, version {mailspool.__version__}"
