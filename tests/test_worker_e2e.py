"""The worker end to end: a real SMTP server (aiosmtpd), a real spool, the real CLI."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

import mailspool
from mailspool.config import Settings
from mailspool.spool import layout
from mailspool.stores.file import FileStore
from tests.fixtures.smtp_server import SMTPSink
from tests.test_batch_format import ARTICLE_FILE

pytestmark = pytest.mark.slow


def cli(
    spool: Path, server: SMTPSink, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailspool", *args],
        env=worker_env(spool, server),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def worker_env(spool: Path, server: SMTPSink) -> dict[str, str]:
    return {
        **os.environ,
        "MAILSPOOL_STORE": f"file://{spool}",
        "MAILSPOOL_TRANSPORT": server.url,
    }


def status(spool: Path, server: SMTPSink) -> dict[str, int]:
    result = cli(spool, server, "status", "--json")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, int] = json.loads(result.stdout)
    return loaded


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def hand_off(spool: Path, count: int, **send: object) -> None:
    settings = Settings.load(store=f"file://{spool}")
    with mailspool.request(settings=settings):
        for i in range(count):
            mailspool.send_mail(f"user{i}@example.com", f"Note {i}", f"<p>Hello {i}</p>", **send)  # type: ignore[arg-type]


def test_5000_emails_in_two_groups_arrive_once_each(spool: Path, smtp_server: SMTPSink) -> None:
    settings = Settings.load(store=f"file://{spool}")
    invoice = ("invoice.pdf", b"%PDF-1.4 " * 1000, "application/pdf")
    group_a = {
        "From": "Blog <blog@example.com>",
        "Cc": "Editor <editor@example.com>",
        "Bcc": "archive@example.com",
        "Reply-To": "Ana <ana@example.com>",
    }
    group_b = "From: Shop <shop@example.com>\r\nContent-Type: text/plain; charset=utf-8"
    with mailspool.request(settings=settings) as scope:
        for i in range(2500):
            mailspool.send_mail(
                f"Reader {i} <a{i}@example.com>", f"Post {i}", f"<p>post {i}</p>", group_a
            )
            mailspool.send_mail(
                f"b{i}@example.com",
                f"Órder {i}",
                f"order {i}",
                group_b,
                [invoice] if i % 250 == 0 else None,
            )
    assert len(scope.keys) == 2

    result = cli(spool, smtp_server, "worker", "--drain")
    assert result.returncode == 0, result.stderr

    envelopes = smtp_server.envelopes
    assert len(envelopes) == 5000
    by_recipient = collections.Counter(r for e in envelopes for r in e.rcpt_tos)
    assert all(by_recipient[f"a{i}@example.com"] == 1 for i in range(2500))
    assert all(by_recipient[f"b{i}@example.com"] == 1 for i in range(2500))
    assert by_recipient["archive@example.com"] == 2500  # bcc: envelope only
    messages = {e.rcpt_tos[0]: (e, e.parsed()) for e in envelopes}
    envelope, first = messages["a7@example.com"]
    assert envelope.mail_from == "blog@example.com"
    assert set(envelope.rcpt_tos) == {"a7@example.com", "editor@example.com", "archive@example.com"}
    assert str(first["To"]) == "Reader 7 <a7@example.com>"
    assert str(first["Cc"]) == "Editor <editor@example.com>"
    assert first["Bcc"] is None
    assert str(first["Reply-To"]) == "Ana <ana@example.com>"
    assert first.get_body(("html",)).get_content().rstrip() == "<p>post 7</p>"  # type: ignore[union-attr]
    _, order = messages["b250@example.com"]
    assert str(order["Subject"]) == "Órder 250"
    assert order.get_body(("plain",)).get_content().rstrip() == "order 250"  # type: ignore[union-attr]
    [attachment] = list(order.iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_payload(decode=True) == invoice[1]
    assert not list(messages["b251@example.com"][1].iter_attachments())

    counts = status(spool, smtp_server)
    assert (counts["sent"], counts["pending"], counts["failed"], counts["quarantined"]) == (
        5000,
        0,
        0,
        0,
    )


def test_451_on_every_first_attempt(spool: Path, smtp_server: SMTPSink) -> None:
    smtp_server.defer_first_attempt()
    hand_off(spool, 50)
    result = cli(spool, smtp_server, "worker", "--drain", "--retry-base", "0.01")
    assert result.returncode == 0, result.stderr
    recipients = collections.Counter(r for e in smtp_server.envelopes for r in e.rcpt_tos)
    assert recipients == collections.Counter(f"user{i}@example.com" for i in range(50))
    assert len(smtp_server.deferred) >= 50


def test_550_fails_one_email_and_retry_sends_it_later(spool: Path, smtp_server: SMTPSink) -> None:
    smtp_server.refuse_recipient("user3@example.com", "550 5.1.1 <user3@example.com>: no such user")
    hand_off(spool, 20)
    result = cli(spool, smtp_server, "worker", "--drain")
    assert result.returncode == 0, result.stderr
    received = {r for e in smtp_server.envelopes for r in e.rcpt_tos}
    assert received == {f"user{i}@example.com" for i in range(20)} - {"user3@example.com"}

    listed = cli(spool, smtp_server, "failed", "list", "--json")
    [failed] = json.loads(listed.stdout)["failed"]
    assert "550" in failed["reason"]
    assert "no such user" in failed["reason"]
    assert failed["recipients"] == ["user3@example.com"]
    shown = json.loads(cli(spool, smtp_server, "failed", "show", failed["id"]).stdout)
    assert shown["email"]["subject"] == "Note 3"
    assert status(spool, smtp_server)["failed"] == 1

    smtp_server.accept_recipient("user3@example.com")  # the mailbox exists now
    assert cli(spool, smtp_server, "failed", "retry", failed["id"]).returncode == 0
    assert status(spool, smtp_server)["pending"] == 1
    assert cli(spool, smtp_server, "worker", "--drain").returncode == 0
    assert [tuple(e.rcpt_tos) for e in smtp_server.envelopes].count(("user3@example.com",)) == 1
    counts = status(spool, smtp_server)
    assert (counts["sent"], counts["failed"], counts["pending"]) == (20, 0, 0)


def test_the_articles_own_file_is_delivered(spool: Path, smtp_server: SMTPSink) -> None:
    FileStore(spool).put("queue/16990000001234560.json", ARTICLE_FILE)
    result = cli(spool, smtp_server, "worker", "--drain")
    assert result.returncode == 0, result.stderr
    received = sorted(r for e in smtp_server.envelopes for r in e.rcpt_tos)
    assert received == ["follower1@example.com", "follower2@example.com", "follower3@example.com"]
    [first] = [m for m in smtp_server.messages if "follower1@example.com" in str(m["To"])]
    assert str(first["From"]) == "My Site <admin@example.com>"
    assert "Caffè" in str(first["Subject"])


def test_bad_files_are_quarantined_or_failed_and_the_rest_delivered(
    spool: Path, smtp_server: SMTPSink
) -> None:
    store = FileStore(spool)
    meta = {"from": "a@example.com", "contentType": "text/plain", "charset": "utf-8"}

    def email(to: str, subject: str = "s", message: str = "m") -> dict[str, object]:
        return {"to": [to], "subject": subject, "message": message, "attachments": []}

    bad_files = {
        "queue/1-not-json.json": b"{this is not json",
        "queue/2-wrong-types.json": orjson.dumps(
            {"meta": meta, "emails": [{"to": "x", "subject": 1}]}
        ),
        "queue/3-missing-meta.json": orjson.dumps({"emails": [email("a@example.com")]}),
        "queue/4-empty.json": orjson.dumps({"meta": meta, "emails": []}),
        "queue/5-version.json": orjson.dumps(
            {"version": 99, "meta": meta, "emails": [email("a@example.com")]}
        ),
    }
    for key, data in bad_files.items():
        store.put(key, data)
    smtp_server.limit_size(20_000)
    mixed = [
        email("good1@example.com"),
        email("crlf@example.com", subject="hi\r\nBcc: victim@example.com"),
        email("not an address"),
        email("big@example.com", message="x" * 50_000),
        email("good2@example.com"),
    ]
    store.put("queue/6-mixed.json", orjson.dumps({"meta": meta, "emails": mixed}))
    hand_off(spool, 10)

    result = cli(spool, smtp_server, "worker", "--drain")
    assert result.returncode == 0, result.stderr

    received = {r for e in smtp_server.envelopes for r in e.rcpt_tos}
    assert received == {"good1@example.com", "good2@example.com"} | {
        f"user{i}@example.com" for i in range(10)
    }
    assert "victim@example.com" not in received
    quarantined = {k for k in store.keys(layout.QUARANTINE) if not k.endswith(".error.json")}
    assert quarantined == {f"quarantine/{k.removeprefix('queue/')}" for k in bad_files}
    errors = {k: orjson.loads(store.get(k + ".error.json"))["error"] for k in quarantined}
    assert "not valid JSON" in errors["quarantine/1-not-json.json"]
    assert "field 'to'" in errors["quarantine/2-wrong-types.json"]
    assert "e-mail #0" in errors["quarantine/2-wrong-types.json"]
    assert "Missing required data" in errors["quarantine/3-missing-meta.json"]
    assert "No emails provided" in errors["quarantine/4-empty.json"]
    assert "unknown format version 99" in errors["quarantine/5-version.json"]
    reasons = {
        f.removeprefix("failed/"): orjson.loads(store.get(f))["reason"]
        for f in store.keys(layout.FAILED)
    }
    assert set(reasons) == {"6-mixed.1.json", "6-mixed.2.json", "6-mixed.3.json"}
    assert "field 'subject'" in reasons["6-mixed.1.json"]
    assert "line break" in reasons["6-mixed.1.json"]
    assert "e-mail #2, field 'to'" in reasons["6-mixed.2.json"]
    assert "552" in reasons["6-mixed.3.json"]
    counts = status(spool, smtp_server)
    assert (counts["sent"], counts["failed"], counts["quarantined"], counts["pending"]) == (
        12,
        3,
        5,
        0,
    )


def test_two_workers_on_one_store_deliver_each_email_once(
    spool: Path, smtp_server: SMTPSink
) -> None:
    settings = Settings.load(store=f"file://{spool}")
    for batch_number in range(20):
        with mailspool.request(settings=settings):
            for i in range(100):
                mailspool.send_mail(f"u{batch_number}-{i}@example.com", "s", "m")
    env = worker_env(spool, smtp_server)
    command = [sys.executable, "-m", "mailspool", "worker", "--drain"]
    workers = [
        subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
    recipients = collections.Counter(r for e in smtp_server.envelopes for r in e.rcpt_tos)
    assert len(recipients) == 2000
    assert set(recipients.values()) == {1}


def test_sigkill_repeatedly_loses_nothing_and_duplicates_at_most_the_in_flight(
    spool: Path, smtp_server: SMTPSink
) -> None:
    concurrency, kills = 4, 3
    # docs/guarantees.md: with no commit interval (the file store's), in flight plus
    # ledger_window (the concurrency) outcomes waiting for the ledger's write
    window = 2 * concurrency
    hand_off(spool, 2000)
    smtp_server.slow_down(0.001)  # long enough that every kill lands mid-batch
    env = worker_env(spool, smtp_server) | {
        "MAILSPOOL_CONCURRENCY": str(concurrency),
        "MAILSPOOL_LEDGER_COMMIT_MS": "0",
    }
    command = [sys.executable, "-m", "mailspool", "worker"]
    for kill in range(kills):
        target = len(smtp_server.envelopes) + 300
        worker = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: len(smtp_server.envelopes) >= target)  # noqa: B023
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        assert len(smtp_server.envelopes) < 2000 + kill * window, "killed too late to test anything"
    smtp_server.slow_down(0)
    result = subprocess.run(
        [*command, "--drain"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr

    recipients = collections.Counter(r for e in smtp_server.envelopes for r in e.rcpt_tos)
    assert set(recipients) == {f"user{i}@example.com" for i in range(2000)}
    duplicates = sum(recipients.values()) - len(recipients)
    assert duplicates <= kills * window
    counts = status(spool, smtp_server)
    assert (counts["pending"], counts["sent"]) == (0, 2000)


def test_sigterm_finishes_in_flight_and_exits_cleanly(spool: Path, smtp_server: SMTPSink) -> None:
    hand_off(spool, 500)
    smtp_server.slow_down(0.002)
    worker = subprocess.Popen(
        [sys.executable, "-m", "mailspool", "worker"],
        env=worker_env(spool, smtp_server) | {"MAILSPOOL_CONCURRENCY": "4"},
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: len(smtp_server.envelopes) >= 50)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    delivered = len(smtp_server.envelopes)
    counts = status(spool, smtp_server)
    assert counts["sent"] == delivered  # everything sent was recorded: nothing in doubt
    assert counts["sent"] + counts["pending"] == 500
    smtp_server.slow_down(0)
    assert cli(spool, smtp_server, "worker", "--drain").returncode == 0
    recipients = collections.Counter(r for e in smtp_server.envelopes for r in e.rcpt_tos)
    assert len(recipients) == 500
    assert set(recipients.values()) == {1}


def test_a_running_worker_notices_new_batches(spool: Path, smtp_server: SMTPSink) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "mailspool", "worker"],
        env=worker_env(spool, smtp_server),
        stderr=subprocess.PIPE,
    )
    try:
        for round_number in range(3):
            hand_off(spool, 5)
            wait_for(lambda: len(smtp_server.envelopes) >= 5 * (round_number + 1))  # noqa: B023
    finally:
        worker.send_signal(signal.SIGINT)
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert len(smtp_server.envelopes) == 15


def test_drain_fails_when_the_store_cannot_be_reached(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = cli(blocker / "spool", smtp_server, "worker", "--drain")
    assert result.returncode == 1
    assert "spool" in result.stderr


def test_gc_removes_finished_batches_only(spool: Path, smtp_server: SMTPSink) -> None:
    hand_off(spool, 3)
    assert cli(spool, smtp_server, "worker", "--drain").returncode == 0
    hand_off(spool, 2)  # pending: gc must keep it
    store = FileStore(spool)
    assert cli(spool, smtp_server, "gc", "--older-than", "1h").stdout.startswith("removed 0")
    old = time.time() - 8 * 86400
    for key in store.keys(layout.DONE):
        os.utime(spool / key, (old, old))
    done_ids = [layout.batch_id_from_key(k) for k in store.keys(layout.DONE)]
    result = cli(spool, smtp_server, "gc", "--older-than", "7d")
    assert result.stdout.startswith("removed 0")  # the batch id says it is new: both must be old
    assert len(list(store.keys(layout.DONE))) == len(done_ids)
    assert len(list(store.keys(layout.QUEUE))) == 1
