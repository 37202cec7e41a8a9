"""The Django glue: backend, middleware, on_commit, the management command, password reset."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests import django_settings

django_settings.configure()

from django.contrib.auth.models import User  # noqa: E402
from django.core import mail  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

import mailspool  # noqa: E402
from mailspool import ConfigurationError, InvalidMessage, Settings  # noqa: E402
from mailspool.integrations.django import to_message  # noqa: E402
from mailspool.spool import layout  # noqa: E402
from tests import framework_common as common  # noqa: E402
from tests.django_views import django_notification  # noqa: E402
from tests.fixtures.smtp_server import SMTPSink  # noqa: E402


@pytest.fixture
def configured(spool: Path, smtp_server: SMTPSink, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Deferred mail to a tmp spool, priority mail to the SMTP server."""
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
    monkeypatch.setenv("MAILSPOOL_PRIORITY_TRANSPORT", smtp_server.url)
    return spool


def test_view_hands_off_500_and_sends_the_priority_one_at_once(
    configured: Path, smtp_server: SMTPSink
) -> None:
    response = Client().get("/notify/")

    assert response.status_code == 200
    common.assert_priority_only(smtp_server)
    assert len(common.queued_files(configured)) == 1  # one meta group, one write
    common.drain(configured, smtp_server)
    common.assert_followers_once_whole(smtp_server)


def test_rolled_back_transaction_sends_none(configured: Path, smtp_server: SMTPSink) -> None:
    response = Client().get("/transaction/", {"outcome": "rollback"})

    assert response.content == b"rolled back"
    assert common.queued_files(configured) == []


def test_a_view_that_raises_outside_a_transaction_queues_nothing(
    configured: Path, smtp_server: SMTPSink
) -> None:
    """One rule for every framework: Django turns the exception into a 500, and the
    middleware drops the deferred mail (``MAILSPOOL_ON_ERROR``, default discard)."""
    response = Client(raise_request_exception=False).get("/boom/")

    assert response.status_code == 500
    assert common.queued_files(configured) == []


def test_committed_transaction_sends_all(configured: Path, smtp_server: SMTPSink) -> None:
    response = Client().get("/transaction/", {"outcome": "commit"})

    assert response.content == b"committed"
    common.drain(configured, smtp_server)
    assert sorted(r for e in smtp_server.envelopes for r in e.rcpt_tos if "follower" in r) == [
        common.follower(i) for i in range(5)
    ]


@override_settings(MAILSPOOL={"ON_COMMIT": False})
def test_on_commit_off_keeps_mail_of_a_rolled_back_transaction(configured: Path) -> None:
    Client().get("/transaction/", {"outcome": "rollback"})

    [batch] = common.queued_files(configured)
    assert batch.read_bytes().count(b"follower") == 5


@override_settings(ATOMIC_REQUESTS=True)
def test_atomic_requests_mail_joins_the_request_scope(configured: Path) -> None:
    from django.db import connections

    connections["default"].settings_dict["ATOMIC_REQUESTS"] = True
    try:
        response = Client().get("/transaction/", {"outcome": "commit"})
    finally:
        connections["default"].settings_dict["ATOMIC_REQUESTS"] = False

    assert response.status_code == 200
    assert len(common.queued_files(configured)) == 1


def test_outside_a_request_send_mass_mail_is_written_at_once(configured: Path) -> None:
    sent = mail.send_mass_mail(
        [("Digest", "weekly digest", common.SENDER, [f"reader{i}@example.com"]) for i in range(30)]
    )

    assert sent == 30
    [batch] = common.queued_files(configured)  # one call, one meta group: one file
    assert batch.read_bytes().count(b"reader") == 30


def test_password_reset_is_priority(configured: Path, smtp_server: SMTPSink) -> None:
    User.objects.filter(username="ana").delete()
    User.objects.create_user("ana", "ana@example.com", "secret-password")

    response = Client().get("/password-reset/", {"email": "ana@example.com"})

    assert response.status_code == 200
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ("ana@example.com",)
    message = envelope.parsed()
    assert str(message["Subject"]) == "Reset your password on blog.example.com"
    assert message["X-Mailspool-Priority"] is None
    assert "https://blog.example.com/reset/" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert common.queued_files(configured) == []


def test_priority_backend_setting_sends_through_django(configured: Path) -> None:
    mail.outbox = []
    with override_settings(
        MAILSPOOL={"PRIORITY_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    ):
        email = django_notification(1)
        email.mailspool_priority = True  # type: ignore[attr-defined]
        assert email.send() == 1

    [sent] = mail.outbox
    assert sent.to == [common.follower(1)]
    assert sent.alternatives[0][1] == "text/html"  # type: ignore[attr-defined]
    assert common.queued_files(configured) == []


def test_mime_attachment_and_django_headers(configured: Path, smtp_server: SMTPSink) -> None:
    Client().get("/mime/")

    common.drain(configured, smtp_server)
    [envelope] = smtp_server.envelopes
    [attachment] = list(envelope.parsed().iter_attachments())
    assert attachment.get_filename() == "notes.txt"
    assert attachment.get_content().rstrip() == "the notes"


def test_conversion_drops_message_id_and_date_and_reads_the_marker() -> None:
    email = django_notification(3)
    email.extra_headers.update(
        {
            "Message-ID": "<x@y>",
            "Date": "Mon, 1 Jan 2024 00:00:00 +0000",
            "X-Mailspool-Priority": "Now",
        }
    )

    message, marker = to_message(email)

    assert marker == "now"
    assert message.headers == (("X-Campaign", "posts"),)
    assert (message.text, message.html) == ("Read post 3", "<p>Read post 3</p>")
    assert message.attachments[0].content == common.ATTACHMENT[1]
    assert message.bcc == ("archive@example.com",)


def test_unsupported_alternative_is_refused() -> None:
    email = django_notification(3)
    email.attach_alternative("{}", "application/json")

    with pytest.raises(InvalidMessage, match="alternative"):
        to_message(email)


def test_fail_silently_does_not_hide_configuration_errors(configured: Path) -> None:
    with override_settings(MAILSPOOL={"MAX_RATE": "fast"}), pytest.raises(ConfigurationError):
        mail.send_mail("Hi", "body", None, ["x@example.com"], fail_silently=True)


def test_fail_silently_hides_a_failed_priority_send(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSPOOL_PRIORITY_TRANSPORT", "smtp://127.0.0.1:1")
    monkeypatch.setenv("MAILSPOOL_PRIORITY_OUTAGE", "raise")  # else an outage is queued
    email = django_notification(1)
    email.mailspool_priority = True  # type: ignore[attr-defined]

    loud = django_notification(2)
    loud.mailspool_priority = True  # type: ignore[attr-defined]

    assert email.send(fail_silently=True) == 0
    with pytest.raises(mailspool.DeliveryError):
        loud.send()


def test_settings_come_from_the_mailspool_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailspool.integrations.django import load_settings

    monkeypatch.setenv("MAILSPOOL_EMAILS_PER_FILE", "7")
    with override_settings(MAILSPOOL={"STORE": "file:///tmp/x", "ON_COMMIT": False}):
        settings = load_settings()

    assert isinstance(settings, Settings)
    assert settings.store == "file:///tmp/x"
    assert settings.emails_per_file == 7


def test_management_command_drains(configured: Path, smtp_server: SMTPSink) -> None:
    Client().get("/notify/", {"n": "20"})

    batches = [layout.batch_id_from_key(path.name) for path in common.queued_files(configured)]
    out, err = io.StringIO(), io.StringIO()
    with override_settings(MAILSPOOL={"TRANSPORT": smtp_server.url}):
        call_command("mailspool_worker", "--drain", stdout=out, stderr=err)

    assert len(smtp_server.envelopes) == 21
    assert common.queued_files(configured) == []
    lines = err.getvalue().splitlines()
    for batch_id in batches:  # one line per batch, once
        assert len([line for line in lines if line.startswith(f"{batch_id}: finished")]) == 1
    assert f"0 failed, 0 quarantined (store file://{configured})" in out.getvalue()


def test_send_later_expiry_and_key_through_headers_and_attributes(configured: Path) -> None:
    from django.core.mail import EmailMessage

    from mailspool.spool import schedule
    from mailspool.stores import open_store

    by_header = EmailMessage(
        "Reminder",
        "tomorrow",
        common.SENDER,
        ["ana@example.com"],
        headers={"X-Mailspool-Send-At": "3600", "X-Mailspool-Key": "reminder-1"},
    )
    by_attribute = EmailMessage("Code", "1234", common.SENDER, ["bob@example.com"])
    by_attribute.mailspool_expires_at = 600  # type: ignore[attr-defined]
    by_attribute.mailspool_key = "code-1"  # type: ignore[attr-defined]
    again = EmailMessage("Code", "1234", common.SENDER, ["bob@example.com"])
    again.mailspool_key = "code-1"  # type: ignore[attr-defined]

    assert mail.get_connection().send_messages([by_header, by_attribute, again]) == 2
    with open_store(f"file://{configured}") as store:
        [scheduled] = store.keys(schedule.SCHEDULED)
        data = store.get(scheduled)
    assert b'"key":"reminder-1"' in data
    assert b"X-Mailspool" not in data  # the headers were taken off
    [queued] = common.queued_files(configured)
    assert b'"expiresAt"' in queued.read_bytes()
    assert mailspool.cancel("reminder-1") is True


def test_the_ses_tenant_comes_from_msg_tenant_or_its_header() -> None:
    email = django_notification(3)
    email.tenant = "shop-eu"  # type: ignore[attr-defined]
    assert to_message(email)[0].tenant == "shop-eu"
    email.extra_headers["X-Mailspool-Tenant"] = "shop-us"  # the header wins, and is taken off
    message, _ = to_message(email)
    assert message.tenant == "shop-us"
    assert all(name != "X-Mailspool-Tenant" for name, _ in message.headers)
