"""What the framework tests share: the e-mails a view sends, the worker run, the checks.

Every framework test has a view send ``FOLLOWERS`` deferred e-mails (text and HTML
bodies, an attachment, cc, bcc, reply-to, an extra header) and one priority e-mail,
then checks that the priority one arrived before the response and the others after
``mailspool worker --drain``, each once and whole.
"""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import mailspool
from mailspool import Attachment, Message, StoreError
from mailspool.stores import open_stores as shared_stores
from mailspool.stores.file import FileStore
from tests.fixtures.smtp_server import SMTPSink

FOLLOWERS = 500
SENDER = "Blog <blog@example.com>"
ATTACHMENT = ("post.pdf", b"%PDF-1.4 post " * 50, "application/pdf")
PRIORITY_TO = "reset@example.com"


def follower(i: int) -> str:
    return f"follower{i}@example.com"


def notification(i: int) -> Message:
    """The deferred e-mail to follower ``i``, in mailspool's model."""
    return Message(
        to=(follower(i),),
        subject=f"New post {i}",
        text=f"Read post {i}",
        html=f"<p>Read post {i}</p>",
        sender=SENDER,
        cc=("editor@example.com",),
        bcc=("archive@example.com",),
        reply_to=("replies@example.com",),
        headers=(("X-Campaign", "posts"),),
        attachments=(Attachment(*ATTACHMENT),),
    )


def send_from_view(count: int = FOLLOWERS) -> None:
    """What the plain WSGI/ASGI/Flask views do: ``count`` deferred and one priority."""
    for i in range(count):
        mailspool.send_message(notification(i), priority=False)
    mailspool.send_mail(PRIORITY_TO, "Reset your password", "<p>reset</p>", priority=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def drain(
    spool: Path, server: SMTPSink, *options: str, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """``mailspool [options] worker --drain`` in a subprocess, on the spool, to the SMTP
    server."""
    env = {
        **os.environ,
        "MAILSPOOL_STORE": f"file://{spool}",
        "MAILSPOOL_TRANSPORT": server.url,
        **extra_env,
    }
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", *options, "worker", "--drain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def assert_priority_only(server: SMTPSink) -> None:
    """Exactly the priority e-mail has arrived."""
    assert [e.rcpt_tos for e in server.envelopes] == [(PRIORITY_TO,)]


def assert_followers_once_whole(server: SMTPSink, count: int = FOLLOWERS) -> None:
    """Every follower got one e-mail, with its headers, both bodies and the attachment."""
    notes = [e for e in server.envelopes if PRIORITY_TO not in e.rcpt_tos]
    by_follower = collections.Counter(r for e in notes for r in e.rcpt_tos if "follower" in r)
    assert len(notes) == count
    assert by_follower == collections.Counter(follower(i) for i in range(count))
    envelope = next(e for e in notes if follower(7) in e.rcpt_tos)
    assert set(envelope.rcpt_tos) == {follower(7), "editor@example.com", "archive@example.com"}
    assert envelope.mail_from == "blog@example.com"
    parsed = envelope.parsed()
    assert str(parsed["Subject"]) == "New post 7"
    assert str(parsed["Cc"]) == "editor@example.com"
    assert parsed["Bcc"] is None
    assert str(parsed["Reply-To"]) == "replies@example.com"
    assert str(parsed["X-Campaign"]) == "posts"
    assert parsed["X-Mailspool-Priority"] is None
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert text.get_content().rstrip() == "Read post 7"
    assert html is not None
    assert html.get_content().rstrip() == "<p>Read post 7</p>"
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == ATTACHMENT[0]
    assert attachment.get_content_type() == ATTACHMENT[2]
    assert attachment.get_payload(decode=True) == ATTACHMENT[1]


def queued_files(spool: Path) -> list[Path]:
    return sorted((spool / "queue").glob("*.json")) if (spool / "queue").is_dir() else []


class HangingStore(FileStore):
    """A stub for a fault: a file store whose ``put`` blocks until ``release`` is set.

    It stands for an S3 endpoint that accepts the connection and never answers. Once
    released, the blocked write lands, as a late write of a timed-out attempt would.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.release = threading.Event()
        self.entered = threading.Event()

    def put(self, key: str, data: bytes) -> None:
        self.entered.set()
        self.release.wait(60)
        super().put(key, data)


class RefusingStore(FileStore):
    """A stub for a fault: a file store whose every write raises ``StoreError``."""

    def put(self, key: str, data: bytes) -> None:
        raise StoreError("503 Slow Down (stub)")

    def put_new(self, key: str, data: bytes) -> bool:
        raise StoreError("503 Slow Down (stub)")


def install_store(store: FileStore) -> str:
    """Make ``store`` the process's shared store for its URL; return the URL."""
    shared_stores._open._opened[store.url] = store  # the cache, as a first use fills it
    return store.url


def get(url: str, timeout: float = 60) -> tuple[int, bytes]:
    """GET a URL on 127.0.0.1; the status and the whole body."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()
