"""A drain reports every batch it could not finish (``mailspool worker --drain`` then
exits 1 naming them) and goes on with the others."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from mailspool.delivery.report import BatchStatus
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import StoreError
from mailspool.stores.file import FileStore
from mailspool.transports.memory import MemoryTransport
from mailspool.triggers.local import drain
from tests.test_worker import queue


class FailingRead(FileStore):
    """A file store whose reads of one key fail: a stub for a store failing on cue, which
    no real server can be asked for."""

    failing = ""

    def get_at_most(self, key: str, limit: int, setting: str = "the limit") -> bytes:
        if key == self.failing:
            raise StoreError(f"cannot read {key!r}: injected")
        return super().get_at_most(key, limit, setting)


def test_a_batch_that_raises_is_reported_and_the_others_go_on(tmp_path: Path) -> None:
    store = FailingRead(tmp_path / "spool")
    broken, fine = queue(store, 2, "a"), queue(store, 3, "b")
    store.failing = broken
    transport = MemoryTransport()
    with closing(Worker(store, transport, options=WorkerOptions(concurrency=2))) as worker:
        report = drain(worker)
    assert [(r.key, r.status) for r in report.errors] == [(broken, BatchStatus.ERROR)]
    assert "injected" in str(report.errors[0].error)
    assert {r.key: r.sent for r in report.batches} == {broken: 0, fine: 3}
    assert store.exists(broken)  # it waits in queue/ for the next run
