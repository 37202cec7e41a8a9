"""Several delivery processes on one store (``mailspool worker --processes N``)."""

from __future__ import annotations

import collections
import functools
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mailspool
from mailspool.config import Settings
from mailspool.delivery.factory import open_worker
from mailspool.delivery.report import BatchReport
from mailspool.errors import MailspoolError
from mailspool.spool import layout
from mailspool.stores.file import FileStore
from mailspool.triggers.local import LOOKS_PER_SHARE, DrainReport, fair_part
from mailspool.triggers.processes import (
    SHARE_SPLIT,
    Doorbell,
    Share,
    _await_look,
    drain_shared,
    run_processes,
)
from tests.fixtures.smtp_server import SMTPSink


def test_each_process_takes_its_share_of_concurrency_and_rate() -> None:
    third = Share(index=2, count=3)
    assert third.concurrency(32) == 11  # 3 x 11 >= 32 sender threads in all
    assert third.rate(90.0) == 30.0  # together at most the one limit
    assert third.rate(None) is None
    assert third.split_above == SHARE_SPLIT
    assert Share(0, 1).split_above is None  # alone: no batch is split


def test_two_processes_share_a_large_batch_and_send_each_email_once(
    spool: Path, smtp_server: SMTPSink
) -> None:
    count = 2 * SHARE_SPLIT + 100
    with mailspool.request(settings=Settings.load(store=f"file://{spool}")):
        for i in range(count):
            mailspool.send_mail(f"user{i}@example.com", f"Note {i}", "<p>Hello</p>")
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "worker", "--drain", "--processes", "2"],
        env={
            **os.environ,
            "MAILSPOOL_STORE": f"file://{spool}",
            "MAILSPOOL_TRANSPORT": smtp_server.url,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # cut into six parts of 350 (``delivery.parts``): three for each process
    assert f"drained 6 batch(es): {count} sent, 0 failed" in result.stdout
    recipients = collections.Counter(r for e in smtp_server.envelopes for r in e.rcpt_tos)
    assert len(recipients) == count
    assert set(recipients.values()) == {1}
    done = FileStore(spool).keys(layout.DONE)
    assert len([key for key in done if key.endswith(".json")]) == 6  # the batch and 5 parts


def _drain_polling_for_an_hour(store_url: str, transport_url: str, share: Share) -> DrainReport:
    with open_worker(Settings.load(store=store_url, transport=transport_url)) as worker:
        return drain_shared(worker, share, poll=3600)


def test_a_process_waiting_for_a_held_batch_looks_again_when_the_batch_ends(
    spool: Path, smtp_server: SMTPSink
) -> None:
    """One batch, two processes: one sends it, the other finds it held and waits. It does
    not wait for its next look (an hour here; 5 s on a bucket): the doorbell the first
    rings when its batch ends wakes it, so the drain ends with the batch (without it this
    test would run into pytest's timeout)."""
    smtp_server.slow_down(0.01)  # the batch is still held when the other process looks
    store = f"file://{spool}"
    with mailspool.request(settings=Settings.load(store=store)):
        for i in range(40):
            mailspool.send_mail(f"user{i}@example.com", f"Note {i}", "<p>Hello</p>")
    work = functools.partial(_drain_polling_for_an_hour, store, smtp_server.url)
    report = run_processes(2, work)
    assert report is not None
    assert sum(batch.sent for batch in report.batches) == 40
    assert len(smtp_server.envelopes) == 40


def test_the_doorbell_wakes_a_waiting_process_and_counts_its_rings() -> None:
    bell = Doorbell()
    since = bell.rung()
    waiter = threading.Thread(target=bell.wait, args=(since, 3600))
    waiter.start()
    bell.ring()
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    assert bell.rung() == since + 1
    bell.wait(since, 3600)  # rung since: returns at once


def test_a_process_waiting_for_the_doorbell_still_stops_at_once() -> None:
    """A stop signal sets the worker's ``stopping`` and cannot ring: the wait looks at it
    (a bucket's poll is 5 s; this one an hour)."""
    bell, stopping = Doorbell(), threading.Event()
    waiter = threading.Thread(target=_await_look, args=(bell, bell.rung(), 3600, stopping))
    waiter.start()
    stopping.set()
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    assert bell.rung() == 0


def _fails(share: Share) -> DrainReport | None:
    raise MailspoolError(f"store unreachable in process {share.index}")


def _dies(share: Share) -> DrainReport | None:
    os._exit(3)


def _drains(share: Share) -> DrainReport | None:
    key = f"queue/b{share.index}.json"
    return DrainReport(batches=[BatchReport(key, f"b{share.index}", sent=share.index + 1)])


def test_a_failing_process_is_reported() -> None:
    with pytest.raises(MailspoolError, match="store unreachable in process 1"):
        run_processes(2, _fails)


def test_a_process_that_dies_without_a_report_is_an_error() -> None:
    with pytest.raises(MailspoolError, match=r"2 delivery process\(es\) ended without a report"):
        run_processes(2, _dies)


def test_the_reports_of_every_process_are_joined() -> None:
    report = run_processes(2, _drains)
    assert report is not None
    assert sorted((b.batch_id, b.sent) for b in report.batches) == [("b0", 1), ("b1", 2)]
    assert report.sent == 3


def _reports_cpus(share: Share) -> DrainReport:
    cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    return DrainReport(batches=[BatchReport(key=f"queue/{cpus}.json", batch_id=cpus)])


def test_with_one_process_per_cpu_each_runs_on_its_own_cpu() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    report = run_processes(len(cpus), _reports_cpus)
    assert report is not None
    assert sorted(b.batch_id for b in report.batches) == sorted(map(str, cpus))


def test_with_more_processes_than_cpus_none_is_pinned() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    report = run_processes(len(cpus) + 1, _reports_cpus)
    assert report is not None
    everywhere = ",".join(map(str, cpus))
    assert [b.batch_id for b in report.batches] == [everywhere] * (len(cpus) + 1)


@given(st.lists(st.text(min_size=1), unique=True, max_size=40), st.integers(1, 6))
def test_each_look_takes_a_little_of_a_fair_share_each_process_from_its_own_offset(
    keys: list[str], count: int
) -> None:
    assert fair_part(keys, 0, 1) == keys  # alone: every batch at each look
    if count == 1:
        return
    size = math.ceil(len(keys) / (count * LOOKS_PER_SHARE))
    parts = [fair_part(keys, index, count) for index in range(count)]
    assert all(len(part) == size for part in parts)
    assert all(set(part) <= set(keys) for part in parts)
    if len(keys) >= count:  # the processes start at different batches
        assert len({part[0] for part in parts}) == count
