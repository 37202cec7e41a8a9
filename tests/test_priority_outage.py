"""Priority mail never raises for an outage, and every priority e-mail's fate is on
record: counted by `status` and `/metrics`, found by `trace`. Real SMTP servers,
stopped and started again; real file stores; `mailspool send` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mailspool
from mailspool.config import Settings
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.feedback.trace import trace_address, trace_message
from mailspool.message import Message
from mailspool.ops.status import collect_status
from mailspool.producer import api
from mailspool.spool import layout
from mailspool.spool.queue_scan import queued_batches
from mailspool.stores.file import FileStore
from mailspool.transports import open_transport
from mailspool.triggers.local import drain
from mailspool.web.metrics import status_metrics
from tests.fixtures.smtp_server import SMTPSink


def _server_back_on(port: int) -> SMTPSink:
    """A new server on the port of one that was stopped: the same URL works again."""
    server = SMTPSink()
    server._controller.port = port  # the kernel chose it for the first one
    return server.start()


def _drain_in_order(spool: Path, url: str) -> None:
    """One batch at a time, in the order the queue gives them."""
    store = FileStore(spool)
    transport = open_transport(url)
    worker = Worker(store, transport, options=WorkerOptions(concurrency=1, max_attempts=1))
    try:
        drain(worker, parallel_batches=1)
    finally:
        worker.close()
        transport.close()
        store.close()


def test_a_priority_send_while_the_server_is_down_is_queued_first_and_delivered_later(
    spool: Path,
) -> None:
    server = SMTPSink().start()
    url = server.url
    server.stop()  # nothing listens on its port now
    settings = Settings.load(store=f"file://{spool}", transport=url, priority_transport=url)
    for i in range(3):  # bulk mail queued before the outage
        bulk = Message.build(to=[f"bulk{i}@example.com"], subject=f"News {i}", text="Hi.")
        api.send_message(bulk, priority=False, settings=settings)
    with mailspool.request(settings=settings):
        sent = mailspool.send_mail(
            "reset@example.com", "Password reset", "<p>link</p>", priority=True
        )
    assert sent is True
    store = FileStore(spool)
    keys = [info.key for info in queued_batches(store, set_aside=False)]
    assert len(keys) == 4
    assert layout.is_priority_batch(keys[0])  # ahead of the bulk mail queued before it
    assert not any(layout.is_priority_batch(key) for key in keys[1:])
    status = collect_status(store)
    assert (status.pending, status.sent, status.total) == (4, 0, 4)
    [traced] = trace_address(store, "reset@example.com")
    assert [step.state for step in traced.steps] == ["queued"]

    server = _server_back_on(server.port)
    try:
        _drain_in_order(spool, url)
        first = server.envelopes[0]
        assert list(first.rcpt_tos) == ["reset@example.com"]
        assert len(server.envelopes) == 4
    finally:
        server.stop()
    status = collect_status(store)
    assert (status.pending, status.sent, status.total) == (0, 4, 4)
    [traced] = trace_address(store, "reset@example.com")
    assert [step.state for step in traced.steps] == ["queued", "sent"]
    store.close()


def test_the_old_behaviour_raises_and_queues_nothing(spool: Path) -> None:
    server = SMTPSink().start()
    url = server.url
    server.stop()
    settings = Settings.load(
        store=f"file://{spool}", priority_transport=url, priority_outage="raise"
    )
    with pytest.raises(mailspool.TransientError), mailspool.request(settings=settings):
        mailspool.send_mail("reset@example.com", "Reset", "<p>link</p>", priority=True)
    store = FileStore(spool)
    assert collect_status(store).total == 0
    store.close()


def test_a_refused_email_still_raises_and_is_counted_failed(
    spool: Path, smtp_server: SMTPSink
) -> None:
    smtp_server.refuse_recipient("nobody@example.com")
    settings = Settings.load(store=f"file://{spool}", priority_transport=smtp_server.url)
    with pytest.raises(mailspool.PermanentError), mailspool.request(settings=settings):
        mailspool.send_mail("nobody@example.com", "Reset", "<p>link</p>", priority=True)
    store = FileStore(spool)
    status = collect_status(store)
    assert (status.failed, status.priority_failed, status.total) == (0, 1, 1)
    [traced] = trace_address(store, "nobody@example.com")
    assert [step.state for step in traced.steps] == ["priority", "failed"]
    assert not list(store.keys(layout.QUEUE))  # a refusal is not queued
    store.close()


def test_priority_sends_are_counted_traced_and_exported(spool: Path, smtp_server: SMTPSink) -> None:
    settings = Settings.load(store=f"file://{spool}", priority_transport=smtp_server.url)
    receipts = []
    for i in range(3):
        message = Message.build(to=[f"p{i}@example.com"], subject="Code", text=f"{i}")
        receipts.append(api.send_now(message, settings=settings))
    api.send_message(
        Message.build(to=["later@example.com"], subject="News", text="Hi."),
        priority=False,
        settings=settings,
    )
    store = FileStore(spool)
    status = collect_status(store)
    assert (status.sent, status.priority_sent, status.pending, status.total) == (0, 3, 1, 4)
    assert status.as_dict()["priority_sent"] == 3
    sent_gauge = next(
        s.value
        for metric in status_metrics(status)
        for s in metric.samples
        if s.name == "mailspool_emails" and s.labels == {"state": "priority_sent"}
    )
    assert sent_gauge == 3.0
    [by_address] = trace_address(store, "p1@example.com")
    assert [step.state for step in by_address.steps] == ["priority", "sent"]
    [by_id] = trace_message(store, receipts[2].message_id)
    assert by_id.recipients == ["p2@example.com"]
    # an hour later the tally's segments are folded: still counted, still traced
    later = time.time() + 3600
    assert collect_status(store, now=later).priority_sent == 3
    [folded] = trace_message(store, receipts[0].message_id)
    assert folded.recipients == ["p0@example.com"]
    store.close()


def _send_cli(spool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = ["send", "--to", "a@example.com", "--subject", "S", "--body", "b", *args]
    return subprocess.run(
        [sys.executable, "-m", "mailspool", *command],
        env={**os.environ, "MAILSPOOL_STORE": f"file://{spool}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_send_says_where_a_refused_write_went_and_exits_3(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "queue").write_text("not a folder")  # the store refuses every batch
    result = _send_cli(spool, "--deferred")
    assert result.returncode == 3, result.stderr
    assert "fallback" in result.stdout
    assert f"file://{spool}" not in result.stdout.split(" in ", 1)[1]
    assert "refused" in result.stderr
    fallback = Path(result.stdout.strip().split(" in ", 1)[1].removeprefix("file://"))
    assert list((fallback / "queue").glob("*.json"))  # really there


def test_send_to_a_store_that_takes_it_says_so_and_exits_0(spool: Path) -> None:
    result = _send_cli(spool, "--deferred")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"queued in file://{spool}"


def test_send_priority_while_the_server_is_down_queues_at_the_front(spool: Path) -> None:
    server = SMTPSink().start()
    url = server.url
    server.stop()
    result = _send_cli(spool, "--priority", "--priority-transport", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"queued at the front in file://{spool}"
    status = subprocess.run(
        [sys.executable, "-m", "mailspool", "status", "--json"],
        env={**os.environ, "MAILSPOOL_STORE": f"file://{spool}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(status.stdout)["pending"] == 1
