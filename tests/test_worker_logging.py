"""Each worker prints one line per batch, exactly once (-v adds other lines, never that one
again), a drain's summary counts quarantined files, and SIGTERM ends the SQS worker
without waiting for its long poll. Real CLI, real file store, moto's SQS over a socket."""

from __future__ import annotations

import threading
from pathlib import Path

import boto3
import pytest

import mailspool
from mailspool.aws.sqs import consume
from mailspool.config import Settings
from mailspool.delivery.factory import open_worker
from mailspool.spool import layout
from mailspool.stores.file import FileStore
from tests import framework_common as common
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.smtp_server import SMTPSink


def queue_batches(spool: Path, count: int) -> list[str]:
    """``count`` batches of 2 e-mails, and one unreadable batch file; their ids."""
    settings = Settings.load(store=f"file://{spool}", emails_per_file=2)
    with mailspool.request(settings=settings):
        for i in range(count * 2):
            mailspool.send_mail(f"user{i}@example.com", f"Note {i}", f"<p>Hello {i}</p>")
    store = FileStore(spool)
    store.put(layout.queue_key("20261127T181348123456Z-0badf11e"), b"{not json")
    return [layout.batch_id_from_key(key) for key in store.keys(layout.QUEUE)]


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_cli_drain_prints_each_batch_once(
    spool: Path, smtp_server: SMTPSink, verbose: list[str]
) -> None:
    ids = queue_batches(spool, 3)
    result = common.drain(spool, smtp_server, *verbose)
    lines = result.stderr.splitlines()
    for batch_id in ids:
        assert len([line for line in lines if line.startswith(f"{batch_id}: ")]) == 1, lines
    assert "6 sent, 0 failed, 1 quarantined" in result.stdout


def test_sigterm_ends_the_sqs_worker_during_its_long_poll(
    aws: MotoServer, spool: Path, tmp_path: Path
) -> None:
    queue_url = boto3.client("sqs").create_queue(QueueName="idle")["QueueUrl"]
    settings = Settings.load(store=f"file://{spool}", transport=f"file://{tmp_path / 'out'}")
    with open_worker(settings) as worker:
        consumer = threading.Thread(target=consume, args=(worker, queue_url))
        consumer.start()
        polls = lambda: [t for t in threading.enumerate() if t.name == "mailspool-sqs-poll"]  # noqa: E731
        while not polls():  # the 20 s long poll is out
            assert consumer.is_alive()
        worker.stop()  # what the SIGTERM handler does
        consumer.join()
        # consume returned while the poll it started is still waiting on the queue
        assert any(t.is_alive() for t in polls())
