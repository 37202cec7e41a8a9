"""Counts exactly once: `status` adds up to every e-mail queued while workers deliver,
after SIGKILLs at any point (between the tally record and the move to done/ too), with
a batch left in both queue/ and done/, and whatever an odd writer left in the tally or
the ledgers. Real SMTP servers, real file stores, real processes."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

import mailspool
from mailspool.config import Settings
from mailspool.delivery.worker import BatchReport, BatchStatus, Worker, WorkerOptions
from mailspool.errors import StoreError
from mailspool.ops.status import Status, collect_status
from mailspool.spool import layout, tally
from mailspool.stores import retry
from mailspool.stores.file import FileStore
from mailspool.transports import open_transport
from mailspool.triggers.local import DrainReport, drain
from tests.dashboard_common import cli, running_dashboard
from tests.fixtures.smtp_server import SMTPSink


def _queue(spool: Path, count: int, per_file: int) -> None:
    settings = Settings.load(store=f"file://{spool}", emails_per_file=per_file)
    with mailspool.request(settings=settings):
        for i in range(count):
            mailspool.send_mail(f"user{i}@example.com", "Note", "<p>Hello</p>")


def _drain(spool: Path, url: str, **options: object) -> None:
    store = FileStore(spool)
    transport = open_transport(url)
    worker = Worker(store, transport, options=WorkerOptions(concurrency=4, **options))  # type: ignore[arg-type]
    try:
        drain(worker)
    finally:
        worker.close()
        transport.close()
        store.close()


def _status(spool: Path, **kwargs: float) -> Status:
    store = FileStore(spool)
    try:
        return collect_status(store, **kwargs)
    finally:
        store.close()


_SAMPLER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mailspool.ops.status import collect_status
    from mailspool.stores.file import FileStore

    spool, stop = Path(sys.argv[1]), Path(sys.argv[2])
    store = FileStore(spool)
    while not stop.exists():
        print(collect_status(store).total, flush=True)
    print(collect_status(store).total, flush=True)
    """
)


def _sampled_drain(
    spool: Path, server: SMTPSink, tmp_path: Path, *, failed: int = 0, **options: object
) -> None:
    """Drain while a thread and another process sample `status`; every sample adds up."""
    stop = threading.Event()
    stop_file = tmp_path / "stop"
    samples: list[int] = []

    def sample() -> None:
        store = FileStore(spool)
        try:
            while not stop.is_set():
                samples.append(collect_status(store).total)
        finally:
            store.close()

    sampler = subprocess.Popen(
        [sys.executable, "-c", _SAMPLER, str(spool), str(stop_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    thread = threading.Thread(target=sample)
    thread.start()
    try:
        _drain(spool, server.url, **options)
    finally:
        stop.set()
        stop_file.touch()
        thread.join()
        out, _ = sampler.communicate(timeout=300)
    from_process = [int(line) for line in out.split()]
    assert from_process  # at least the one after the drain
    assert [total for total in samples if total != 900] == []
    assert [total for total in from_process if total != 900] == []
    final = _status(spool)
    assert (final.sent, final.failed, final.pending, final.total) == (900 - failed, failed, 0, 900)
    assert len(server.envelopes) == 900 - failed


def test_status_sampled_during_a_drain_of_900_always_adds_up(
    spool: Path, smtp_server: SMTPSink, tmp_path: Path
) -> None:
    _queue(spool, 900, per_file=10)
    assert _status(spool).total == 900
    _sampled_drain(spool, smtp_server, tmp_path)


def test_status_adds_up_while_some_emails_fail(
    spool: Path, smtp_server: SMTPSink, tmp_path: Path
) -> None:
    for i in range(0, 900, 10):
        smtp_server.refuse_recipient(f"user{i}@example.com")
    _queue(spool, 900, per_file=10)
    _sampled_drain(spool, smtp_server, tmp_path, failed=90)


def test_status_adds_up_while_batches_are_split_into_continuations(
    spool: Path, smtp_server: SMTPSink, tmp_path: Path
) -> None:
    _queue(spool, 900, per_file=300)
    _sampled_drain(spool, smtp_server, tmp_path, split_above=40)


_KILLED_BETWEEN_RECORD_AND_MOVE = textwrap.dedent(
    """
    import os, signal, sys
    from mailspool.delivery.worker import BatchReport, BatchStatus, Worker, WorkerOptions
    from mailspool.stores.file import FileStore
    from mailspool.transports import open_transport
    from mailspool.triggers.local import DrainReport, drain

    class Dies(FileStore):
        def move(self, source, destination):
            if destination.startswith("done/"):
                os.kill(os.getpid(), signal.SIGKILL)  # the record is written, the move not
            return super().move(source, destination)

    worker = Worker(Dies(sys.argv[1]), open_transport(sys.argv[2]), options=WorkerOptions())
    drain(worker)
    """
)


def test_a_sigkill_between_the_record_and_the_move_counts_the_batch_once(
    spool: Path, smtp_server: SMTPSink
) -> None:
    _queue(spool, 5, per_file=0)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_BETWEEN_RECORD_AND_MOVE, str(spool), smtp_server.url],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    store = FileStore(spool)
    [queued] = store.keys(layout.QUEUE)  # still queued, already counted
    assert not list(store.keys(layout.DONE))
    status = collect_status(store)
    assert (status.sent, status.pending, status.batches_done, status.total) == (5, 0, 1, 5)
    # folded while the batch is still queued: the fold keeps its id
    later = time.time() + 3600
    assert collect_status(store, now=later).sent == 5
    assert layout.batch_id_from_key(queued) in tally.Tally.decode(store.get(tally.TOTAL)).kept
    _drain(spool, smtp_server.url)
    assert len(smtp_server.envelopes) == 5  # nothing sent again
    assert not list(store.keys(layout.QUEUE))
    for moment in (None, later, later + 3600):
        status = collect_status(store) if moment is None else collect_status(store, now=moment)
        assert (status.sent, status.batches_done, status.total) == (5, 1, 5)
    store.close()


def test_a_batch_in_both_queue_and_done_is_counted_once(spool: Path, smtp_server: SMTPSink) -> None:
    _queue(spool, 5, per_file=0)
    _drain(spool, smtp_server.url)
    [done] = list((spool / "done").glob("*.json"))
    shutil.copy(done, spool / "queue" / done.name)  # a move a crash interrupted
    status = _status(spool)
    assert (status.sent, status.pending, status.total) == (5, 0, 5)
    _drain(spool, smtp_server.url)  # finishes the move, sends nothing, records nothing
    assert len(smtp_server.envelopes) == 5
    assert not list((spool / "queue").glob("*.json"))
    status = _status(spool)
    assert (status.sent, status.batches_done, status.total) == (5, 1, 5)
    assert _status(spool, now=time.time() + 3600).sent == 5


def test_sigkills_of_workers_at_random_points_leave_counts_that_add_up(
    spool: Path, smtp_server: SMTPSink
) -> None:
    count = 600
    _queue(spool, count, per_file=20)
    chance = random.Random(20261207)
    env = {
        **os.environ,
        "MAILSPOOL_STORE": f"file://{spool}",
        "MAILSPOOL_TRANSPORT": smtp_server.url,
    }
    for _ in range(6):
        worker = subprocess.Popen(
            [sys.executable, "-m", "mailspool", "worker", "--drain", "--processes", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(chance.uniform(0.2, 2.0))  # a random point of the drain, not an assertion
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=120)
        assert _status(spool).total == count
    finished = subprocess.run(
        [sys.executable, "-m", "mailspool", "worker", "--drain", "--processes", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    status = _status(spool)
    assert (status.sent, status.pending, status.total) == (count, 0, count)
    assert status.batches_done == count // 20
    received = Counter(r for e in smtp_server.envelopes for r in e.rcpt_tos)
    assert len(received) == count  # every e-mail arrived (a few twice: those in flight)


def test_a_symlinked_ledger_or_odd_tally_records_never_break_status(
    spool: Path, smtp_server: SMTPSink, tmp_path: Path
) -> None:
    _queue(spool, 3, per_file=1)
    _drain(spool, smtp_server.url)
    _queue(spool, 2, per_file=1)
    store = FileStore(spool)
    queued = [layout.batch_id_from_key(k) for k in store.keys(layout.QUEUE)]
    outside = tmp_path / "elsewhere"
    outside.write_text('[{"i": 0, "s": "sent"}]\n')
    (spool / "ledger").mkdir(exist_ok=True)
    (spool / "ledger" / queued[0]).symlink_to(outside)
    segment = spool / tally.LOG / tally.segment(time.time())
    with segment.open("ab") as log:
        for odd in (b"[1]", b'{"b": [1], "done": 1}', b'{"b": "x", "done": "1"}', b'"x"'):
            log.write(odd + b"\n")
        log.write(b'{"b": "y", "done": 1, "sent": "many"}\n')
    status = collect_status(store)
    assert (status.sent, status.pending, status.total) == (3, 2, 5)
    store.close()
    result = cli(spool, "status", "--json")
    assert result.returncode == 0, result.stderr
    with running_dashboard(spool) as base:
        for page in ("/", "/batches", "/metrics"):
            with urllib.request.urlopen(f"{base}{page}", timeout=60) as answer:
                assert answer.status == 200


class _Disk:
    """A disk shared by two workers' stores: ``full`` makes every write fail (ENOSPC)."""

    def __init__(self) -> None:
        self.full = False
        self.writes_left: int | None = None  # fills up after this many more appends


class _FillingStore(FileStore):
    def __init__(self, root: Path, disk: _Disk) -> None:
        super().__init__(root)
        self.disk = disk

    def _check(self, key: str) -> None:
        if self.disk.writes_left is not None and key.startswith(layout.LEDGER):
            self.disk.writes_left -= 1
            if self.disk.writes_left < 0:
                self.disk.full = True
        if self.disk.full:
            raise StoreError(f"cannot write {key}: [Errno 28] No space left on device")

    def append(self, key: str, record: bytes) -> None:
        self._check(key)
        super().append(key, record)

    def put(self, key: str, data: bytes) -> None:
        self._check(key)
        super().put(key, data)


def test_a_batch_given_up_by_two_workers_on_a_full_disk_is_sent_once_more_at_most(
    spool: Path, smtp_server: SMTPSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retry, "WRITE_PATIENCE", 0.3)  # give up a write sooner
    _queue(spool, 60, per_file=0)
    [key] = FileStore(spool).keys(layout.QUEUE)
    disk = _Disk()
    workers = []
    for _ in range(2):  # two workers, each its own store handle and claims
        store = _FillingStore(spool, disk)
        transport = open_transport(smtp_server.url)
        options = WorkerOptions(concurrency=4, max_attempts=1, ledger_window=0)
        workers.append(Worker(store, transport, options=options))
    first, second = workers
    disk.writes_left = 5
    try:
        for worker in (first, second, first, second):  # each gives the batch up
            with pytest.raises(StoreError):
                worker.deliver(key)
        disk.full, disk.writes_left = False, None  # space again
        for worker in (first, second):
            worker.deliver(key)
    finally:
        for worker in workers:
            worker.close()
            worker.transport.close()
    received = Counter(r for e in smtp_server.envelopes for r in e.rcpt_tos)
    assert len(received) == 60
    assert max(received.values()) <= 2
    status = _status(spool)
    assert (status.sent, status.pending, status.total) == (60, 0, 60)


def test_a_drain_with_two_processes_reports_each_batch_once(
    spool: Path, smtp_server: SMTPSink
) -> None:
    _queue(spool, 200, per_file=5)
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "worker", "--drain", "--processes", "2"],
        env={
            **os.environ,
            "MAILSPOOL_STORE": f"file://{spool}",
            "MAILSPOOL_TRANSPORT": smtp_server.url,
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "drained 40 batch(es): 200 sent, 0 failed" in result.stdout
    assert _status(spool).batches_done == 40


def test_a_batch_another_process_finished_is_not_reported_again() -> None:
    key = layout.queue_key("20261207T000000000000Z-00000000")
    batch_id = layout.batch_id_from_key(key)
    report = DrainReport(
        [
            BatchReport(key, batch_id, BatchStatus.FINISHED, sent=5),
            BatchReport(key, batch_id, BatchStatus.MISSING),  # the other process's look
            BatchReport(key, batch_id, BatchStatus.HELD),
        ]
    )
    assert report.summary("file://x").startswith("drained 1 batch(es): 5 sent")
