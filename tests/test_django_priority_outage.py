"""Django's password reset while the priority SMTP server is down: the view answers 200,
the e-mail waits at the front of the queue, and the worker delivers it once the server
is back. A real SMTP server, stopped and started again on its port."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import django_settings

django_settings.configure()

from django.contrib.auth.models import User  # noqa: E402
from django.test import Client  # noqa: E402

from mailspool.ops.status import collect_status  # noqa: E402
from mailspool.spool import layout  # noqa: E402
from mailspool.stores.file import FileStore  # noqa: E402
from tests import framework_common as common  # noqa: E402
from tests.fixtures.smtp_server import SMTPSink  # noqa: E402


def test_a_password_reset_while_the_server_is_down_answers_200_and_arrives_later(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = SMTPSink().start()
    port = server.port
    server.stop()
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
    monkeypatch.setenv("MAILSPOOL_PRIORITY_TRANSPORT", server.url)
    User.objects.filter(username="ana").delete()
    User.objects.create_user("ana", "ana@example.com", "secret-password")

    response = Client().get("/password-reset/", {"email": "ana@example.com"})

    assert response.status_code == 200
    [queued] = common.queued_files(spool)
    assert layout.is_priority_batch(queued.name)
    back = SMTPSink()
    back._controller.port = port  # the same URL works again
    back.start()
    try:
        common.drain(spool, back)
        [envelope] = back.envelopes
    finally:
        back.stop()
    assert list(envelope.rcpt_tos) == ["ana@example.com"]
    store = FileStore(spool)
    status = collect_status(store)
    assert (status.sent, status.pending, status.total) == (1, 0, 1)
    store.close()
