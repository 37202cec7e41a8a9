"""Keys under ``queue/`` that are no batch never stop anything: a drain, ``status``, the
sweeper and the Lambda handler go on; what the store can move goes to ``quarantine/``,
what no store can address is reported once and left alone. A nested copy of a batch is
never delivered in its place. On the file store and on S3 (moto)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import orjson
import pytest

from mailspool.aws.lambda_handler import deliver_event
from mailspool.aws.sweeper import sweep
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.ops.status import collect_status
from mailspool.spool import layout
from mailspool.spool.layout import QueueKey
from mailspool.stores.file import FileStore
from mailspool.transports.memory import MemoryTransport
from mailspool.triggers.local import drain
from tests.fixtures.smtp_server import SMTPSink
from tests.test_aws_handler import BUCKET, PREFIX, Stack, stack  # noqa: F401 - the fixture
from tests.test_worker import queue

FAST = WorkerOptions(concurrency=2, retry_base=0.001, retry_cap=0.01)
ODD_ON_DISK = ["queue/sub/{id}.json", "queue/readme.txt", "queue/a\\b.json", "queue/tab\t.json"]
ODD_ON_S3 = [*ODD_ON_DISK, "queue/../{id}.json", "queue/.hidden.json", "queue//{id}.json"]


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("queue/20261127T181348123456Z-1a2b3c4d.json", QueueKey.BATCH),
        ("queue/b-p3.json", QueueKey.BATCH),
        ("queue/sub/b.json", QueueKey.FOREIGN),
        ("queue/readme.txt", QueueKey.FOREIGN),
        ("queue/x.json/y", QueueKey.FOREIGN),
        ("queue/../b.json", QueueKey.UNREADABLE),
        ("queue/.b.json", QueueKey.UNREADABLE),
        ("queue//b.json", QueueKey.UNREADABLE),
        ("queue/a\\b.json", QueueKey.UNREADABLE),
        ("queue/a\0b.json", QueueKey.UNREADABLE),
        ("queue/a\x7fb.json", QueueKey.UNREADABLE),
    ],
)
def test_queue_keys_are_classified(key: str, kind: QueueKey) -> None:
    assert layout.classify_queue_key(key) is kind


def test_odd_files_on_disk_stop_nothing(spool: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FileStore(spool)
    key = queue(store, 3)
    batch_id = layout.batch_id_from_key(key)
    for odd in ODD_ON_DISK:
        path = spool / odd.format(id=batch_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(key))  # a nested copy of the batch, or anything
    assert collect_status(store).pending == 3  # status reads past them, moving nothing
    transport = MemoryTransport()
    with closing(Worker(store, transport, options=FAST)) as worker:
        first, second = drain(worker), drain(worker)
    assert [(r.key, r.status, r.sent) for r in first.batches] == [(key, "finished", 3)]
    assert second.batches == []
    assert len(transport.outbox) == 3  # the nested copy was not delivered in its place
    assert store.exists(f"quarantine/sub%2F{batch_id}.json")
    error = orjson.loads(store.get(f"quarantine/sub%2F{batch_id}.json.error.json"))
    assert error["file"] == f"queue/sub/{batch_id}.json"
    assert store.exists("quarantine/readme.txt.error.json")
    assert (spool / "queue" / "a\\b.json").exists()  # no store reads it: left, reported
    reported = [r for r in caplog.records if "a\\\\b.json" in r.getMessage()]
    assert len(reported) == 1
    status = collect_status(store)
    assert (status.pending, status.sent, status.quarantined) == (0, 3, 3 + 3)  # both copies


def cli(spool: Path, server: SMTPSink, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILSPOOL_STORE": f"file://{spool}", "MAILSPOOL_TRANSPORT": server.url}
    return subprocess.run(
        [sys.executable, "-m", "mailspool", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_drains_and_reports_with_an_odd_file(spool: Path, smtp_server: SMTPSink) -> None:
    store = FileStore(spool)
    queue(store, 2)
    (spool / "queue" / "a\\b.json").write_bytes(b"{}")
    drained = cli(spool, smtp_server, "worker", "--drain")
    assert drained.returncode == 0, drained.stderr
    status = cli(spool, smtp_server, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["sent"] == 2
    assert len(smtp_server.envelopes) == 2


def put_odd_keys(stack: Stack, batch_id: str) -> None:  # noqa: F811
    for odd in ODD_ON_S3:
        stack.s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{odd.format(id=batch_id)}", Body=b"{}")


def test_the_sweeper_goes_past_odd_keys_on_s3(stack: Stack) -> None:  # noqa: F811
    store = stack.store
    key = queue(store, 2)
    put_odd_keys(stack, layout.batch_id_from_key(key))
    transport = MemoryTransport()
    with closing(Worker(store, transport, options=FAST)) as worker:
        report = sweep(store, worker, older_than=0)
    assert report.redriven == [key]
    assert len(transport.outbox) == 2
    assert store.exists("quarantine/readme.txt")
    assert collect_status(store).sent == 2


def test_the_handler_acknowledges_events_for_odd_keys(stack: Stack) -> None:  # noqa: F811
    store = stack.store
    key = queue(store, 2)
    put_odd_keys(stack, layout.batch_id_from_key(key))
    records = stack.receive() + stack.receive() + stack.receive()
    events = {json.loads(r["body"])["Records"][0]["s3"]["object"]["key"] for r in records}
    assert len(events) > 2  # S3 announced odd keys too (those ending in .json)
    transport = MemoryTransport()
    with closing(Worker(store, transport, options=FAST)) as worker:
        answer = deliver_event({"Records": records}, worker)
    assert answer == {"batchItemFailures": []}
    assert len(transport.outbox) == 2


def test_odd_keys_are_reported_once_per_process(
    stack: Stack,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = stack.store
    put_odd_keys(stack, "once-only")
    with caplog.at_level(logging.WARNING):
        collect_status(store)
        collect_status(store)
    reported = [r.getMessage() for r in caplog.records if "../once-only" in r.getMessage()]
    assert len(reported) == 1
    assert "remove it" in reported[0]
