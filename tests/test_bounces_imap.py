"""``mailspool bounces imap`` against a real Dovecot: returned mail appended to the
mailbox (IMAP APPEND) is read once, marked or moved, and the poller outlives the
server going away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.feedback.verp import Verp
from mailspool.stores.file import FileStore
from tests.bounce_samples import arf, auto_reply, dsn
from tests.fixtures.dovecot import Dovecot
from tests.fixtures.smtp_server import self_signed_certificate

pytestmark = pytest.mark.slow

SECRET = "s3cret-key-of-32-bytes-for-tests!"
VERP = Verp("bounces@example.com", SECRET.encode())
BATCH = "20261207T100000000000Z-0a1b2c3d"


def env(spool: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MAILSPOOL_STORE": f"file://{spool}",
        "MAILSPOOL_BOUNCE_ADDRESS": "bounces@example.com",
        "MAILSPOOL_BOUNCE_SECRET": SECRET,
    }


def imap(spool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailspool", "bounces", "imap", *args],
        env=env(spool),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def wait_for(condition: Callable[[], bool], seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def returned_mail() -> list[bytes]:
    """A hard bounce, a complaint, a delay, an auto-reply and a forged bounce."""
    hard = VERP.envelope_sender(BATCH, 0, ["gone@example.org"])
    complained = VERP.envelope_sender(BATCH, 1, ["reader@example.org"])
    delayed = VERP.envelope_sender(BATCH, 2, ["slow@example.org"])
    return [
        dsn("gone@example.org", hard),
        arf("reader@example.org", complained),
        dsn("slow@example.org", delayed, action="delayed", status="4.4.7"),
        auto_reply("Ana <ana@example.org>", hard),
        dsn("victim@example.org", hard),  # a token for someone else
    ]


def test_once_reads_each_message_marks_it_seen_and_records_it(
    spool: Path, dovecot_server: Dovecot
) -> None:
    for raw in returned_mail():
        dovecot_server.append(raw)
    result = imap(spool, dovecot_server.url, "--once")
    assert result.returncode == 0, result.stderr
    assert "5 message(s): 2 event(s), 2 new, 2 address(es) suppressed" in result.stdout
    assert "1 rejected, 2 ignored" in result.stdout
    assert "victim@example.org" in result.stderr  # the rejection, said
    suppressions = SuppressionList(FileStore(spool))
    gone, reader = suppressions.get("gone@example.org"), suppressions.get("reader@example.org")
    assert gone is not None
    assert reader is not None
    assert (gone.reason, reader.reason) == (Reason.BOUNCE, Reason.COMPLAINT)
    assert "Recipient address rejected" in gone.diagnostic
    assert suppressions.get("victim@example.org") is None
    assert (dovecot_server.count("ALL"), dovecot_server.count("UNSEEN")) == (5, 0)

    again = imap(spool, dovecot_server.url, "--once")
    assert again.returncode == 0, again.stderr
    assert "0 message(s)" in again.stdout


def test_move_puts_what_was_read_in_another_folder(spool: Path, dovecot_server: Dovecot) -> None:
    for raw in returned_mail()[:2]:
        dovecot_server.append(raw)
    result = imap(spool, dovecot_server.url, "--once", "--move", "Processed")
    assert result.returncode == 0, result.stderr
    assert "2 message(s)" in result.stdout
    assert dovecot_server.count("ALL") == 0
    assert dovecot_server.count("ALL", mailbox="Processed") == 2


def test_a_message_read_twice_by_two_routes_changes_nothing(
    spool: Path, dovecot_server: Dovecot
) -> None:
    raw = returned_mail()[0]
    dovecot_server.append(raw)
    dovecot_server.append(raw)  # the same bounce delivered twice
    result = imap(spool, dovecot_server.url, "--once")
    assert "2 message(s): 2 event(s), 1 new" in result.stdout
    piped = subprocess.run(
        [sys.executable, "-m", "mailspool", "bounces", "ingest", "-"],
        env=env(spool),
        input=raw,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert b"1 event(s), 0 new" in piped.stdout


def test_once_fails_when_the_server_is_away(spool: Path, dovecot_server: Dovecot) -> None:
    dovecot_server.stop()
    result = imap(spool, dovecot_server.url, "--once")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr
    assert "imap-test-password" not in result.stderr  # the password is never shown


def test_the_poller_outlives_the_server_going_away(spool: Path, dovecot_server: Dovecot) -> None:
    dovecot_server.stop()
    poller = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailspool",
            "bounces",
            "imap",
            dovecot_server.url,
            "--interval",
            "1",
        ],
        env=env(spool),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    suppressions = SuppressionList(FileStore(spool), cache_ttl=0)
    try:
        dovecot_server.start()
        dovecot_server.append(returned_mail()[0])
        wait_for(lambda: suppressions.get("gone@example.org") is not None)
        dovecot_server.stop()  # away again while the poller runs
        dovecot_server.start()
        dovecot_server.append(returned_mail()[1])
        wait_for(lambda: suppressions.get("reader@example.org") is not None)
    finally:
        poller.send_signal(signal.SIGTERM)
        out, err = poller.communicate(timeout=300)
    assert poller.returncode == 0, err
    assert "2 message(s)" in out
    assert "next try in" in err  # it said it would reconnect


@pytest.mark.parametrize("tls", ["imaps", "starttls"])
def test_tls_with_the_servers_certificate(spool: Path, dovecot_server: Dovecot, tls: str) -> None:
    dovecot_server.append(returned_mail()[0])
    url = dovecot_server.tls_url if tls == "imaps" else f"{dovecot_server.url}?starttls=true"
    certfile, _ = self_signed_certificate()
    untrusted = imap(spool, url, "--once")
    assert untrusted.returncode == 1  # the self-signed certificate is not trusted by default
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    result = imap(spool, url, "--once", "--cafile", certfile)
    assert result.returncode == 0, result.stderr
    assert "1 message(s): 1 event(s), 1 new, 1 address(es) suppressed" in result.stdout
