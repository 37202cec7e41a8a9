"""Django's own ``BaseEmailBackendTests`` against mailspool's e-mail backend.

The tests come from the installed Django's source distribution (``tests.django_battery``),
never from a copy: whatever Django version runs, its battery runs. It runs twice: on the
deferred path (``DEFAULT_PRIORITY`` ``deferred``), each e-mail written to a batch file in
a spool, delivered by a worker's drain (in this process) to a ``file://`` outbox and read
back from there as Django's ``FileBackendTests`` reads its folder; then on the priority
path (``DEFAULT_PRIORITY`` ``now``), each e-mail sent at once to the outbox.

Every test of the battery runs and must pass: none is skipped or expected to fail.
"""

from __future__ import annotations

import shutil
import tempfile
from email.message import EmailMessage
from pathlib import Path

from tests import django_settings

django_settings.configure()

from django.test import SimpleTestCase, override_settings  # noqa: E402

from mailspool.delivery.factory import open_worker  # noqa: E402
from mailspool.integrations.django import load_settings  # noqa: E402
from mailspool.transports.file import FileTransport  # noqa: E402
from mailspool.triggers.local import drain  # noqa: E402
from tests import django_battery  # noqa: E402

battery = django_battery.load()


class MailspoolBackendTests(battery.BaseEmailBackendTests, SimpleTestCase):  # type: ignore[misc,name-defined]
    """Every e-mail through a batch file, a drain and the ``file://`` outbox."""

    email_backend = "mailspool.integrations.django.EmailBackend"
    priority = "deferred"

    def setUp(self) -> None:
        super().setUp()
        folder = Path(tempfile.mkdtemp(prefix="mailspool-battery-"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        self.outbox = FileTransport(folder / "outbox")
        conf = {
            "STORE": f"file://{folder / 'spool'}",
            "TRANSPORT": self.outbox.url,
            "PRIORITY_TRANSPORT": self.outbox.url,
            "DEFAULT_PRIORITY": self.priority,
            "CONCURRENCY": 1,  # delivered in the order sent, as the battery reads them
            "ON_COMMIT": False,  # SimpleTestCase allows no database connection
        }
        overridden = override_settings(MAILSPOOL=conf)
        overridden.enable()
        self.addCleanup(overridden.disable)

    def get_mailbox_content(self) -> list[EmailMessage]:
        with open_worker(load_settings()) as worker:
            report = drain(worker)
        assert not report.errors, [r.error for r in report.errors]
        assert report.failed == 0, report.summary("spool")
        return [battery.message_from_bytes(saved.data) for saved in self.outbox.sent()]

    def flush_mailbox(self) -> None:
        for saved in self.outbox.sent():
            saved.path.unlink()
            saved.path.with_name(saved.path.stem + ".envelope.json").unlink()


class MailspoolPriorityBackendTests(MailspoolBackendTests):
    """Every e-mail sent at once (``DEFAULT_PRIORITY`` ``now``) to the ``file://`` outbox;
    the drain finds nothing to deliver."""

    priority = "now"
