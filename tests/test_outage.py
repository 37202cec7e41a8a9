"""An outage is not a failure: a relay that goes down pauses delivery, fails nothing and
spends no attempt; the drain goes on by itself when it comes back.

The end-to-end tests stop a real aiosmtpd server in the middle of a ``mailspool worker
--drain`` (a whole process, the CLI's defaults) and start it again on the same port. The
gate's own tests move a clock they control.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

import mailspool
from mailspool.config import Settings
from mailspool.delivery.batch_run import BatchRun
from mailspool.delivery.factory import build_worker, open_delivery_transport
from mailspool.delivery.outage import TransportGate
from mailspool.errors import TransientError, TransportUnavailable
from mailspool.spool import layout
from mailspool.spool.pauses import Pause, read_pauses, record_pause
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.local import DrainReport, drain
from tests.clock import Clock
from tests.dashboard_common import running_dashboard
from tests.fixtures.smtp_server import SMTPSink
from tests.test_worker_e2e import cli, hand_off, wait_for, worker_env
from tests.transport_contract import simple_message

# -- what counts as an outage ------------------------------------------------------


def test_a_server_that_is_not_there_is_an_outage(smtp_server: SMTPSink) -> None:
    url = smtp_server.url
    smtp_server.stop()
    with SMTPTransport.from_url(url) as transport, pytest.raises(TransportUnavailable):
        transport.send(simple_message())


def test_421_is_an_outage_and_a_refused_recipient_is_not(smtp_server: SMTPSink) -> None:
    smtp_server.refuse_recipient("busy@example.com", "421 4.3.2 service shutting down")
    smtp_server.refuse_recipient("full@example.com", "452 4.2.2 mailbox full")
    with SMTPTransport.from_url(smtp_server.url) as transport:
        with pytest.raises(TransportUnavailable, match="421"):
            transport.send(simple_message(to="busy@example.com"))
        with pytest.raises(TransientError, match="452") as raised:
            transport.send(simple_message(to="full@example.com"))
    assert not isinstance(raised.value, TransportUnavailable)


# -- the gate ----------------------------------------------------------------------


def test_the_gate_pauses_probes_once_and_doubles_its_pause() -> None:
    clock = Clock()
    changes: list[Pause | None] = []
    gate = TransportGate(base=1.0, cap=4.0, clock=clock, on_change=changes.append)
    assert gate.admits()
    gate.failed("refused")
    assert gate.pause is not None
    assert gate.wait() == 1.0
    assert not gate.admits()  # the pause has not run out
    gate.failed("refused again")  # a send that left before the pause: changes nothing
    assert gate.wait() == 1.0
    clock.now = 1.0
    assert gate.admits()  # the probe
    assert not gate.admits()  # only one
    gate.failed("still refused")
    assert gate.wait() == 2.0
    for expected in (4.0, 4.0):  # capped
        clock.now += gate.wait()
        assert gate.admits()
        gate.failed("down")
        assert gate.wait() == expected
    clock.now += gate.wait()
    assert gate.admits()
    gate.answered()
    assert gate.pause is None
    assert gate.admits()
    assert gate.admits()  # every sender again
    assert [c is None for c in changes] == [False, False, False, False, True]
    assert changes[0] is not None
    assert changes[0].reason == "refused"


def test_a_probe_that_never_reached_the_transport_lets_another_probe() -> None:
    clock = Clock()
    gate = TransportGate(base=1.0, clock=clock)
    gate.failed("refused")
    clock.now = 5.0
    assert gate.admits()
    gate.unanswered()
    assert gate.admits()


# -- a drain through an outage ---------------------------------------------------------


def test_a_relay_down_during_a_drain_fails_nothing_and_the_drain_finishes(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    spool = tmp_path / "spool"
    hand_off(spool, 300)
    smtp_server.slow_down(0.005)  # the drain is still under way when the relay goes
    drain = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailspool",
            "worker",
            "--drain",
            "--no-progress",
            "--processes",
            "2",
        ],
        env=worker_env(spool, smtp_server) | {"MAILSPOOL_CONCURRENCY": "4"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = FileStore(spool)
    try:
        wait_for(lambda: len(smtp_server.envelopes) >= 30)
        smtp_server.stop()  # connection refused from now on
        wait_for(lambda: bool(read_pauses(store)))  # the worker says it is paused
        during = cli(spool, smtp_server, "status")
        assert "delivery     paused since" in during.stdout, during.stdout
        assert "next try" in during.stdout
        assert "failed       0" in during.stdout
        paused = json.loads(cli(spool, smtp_server, "status", "--json").stdout)["paused"]
        assert len(paused) == 1
        assert paused[0]["transport"] == smtp_server.url
        smtp_server.slow_down(0)
        smtp_server.restart()
        stdout, stderr = drain.communicate(timeout=120)
    finally:
        if drain.poll() is None:
            drain.kill()
    assert drain.returncode == 0, stderr
    assert " 300 sent" in stdout + stderr
    assert not list(store.list(layout.FAILED))
    assert not read_pauses(store)  # the record went with the outage
    delivered = collections.Counter(r for e in smtp_server.envelopes for r in e.rcpt_tos)
    assert set(delivered) == {f"user{i}@example.com" for i in range(300)}
    # an e-mail whose content had left when the relay went may come twice, no more
    assert sum(delivered.values()) - 300 <= 4
    # one line per change of state in each process that met the outage (each has its
    # own gate; whether the second process had e-mails in flight depends on timing)
    unavailable = stderr.count("is unavailable")
    assert 1 <= unavailable <= 2, stderr
    assert stderr.count("is back after") == unavailable, stderr


def drain_through_outage(
    settings: Settings, store: FileStore, smtp_server: SMTPSink, failed_probes: int
) -> DrainReport:
    """Stop the relay and drain ``store`` in this process; the relay comes back once the
    worker's gate has counted ``failed_probes`` failed probes."""
    smtp_server.stop()
    transport = open_delivery_transport(settings)
    worker = build_worker(settings, store, transport)

    def restart_after_failed_probes() -> None:
        wait_for(lambda: (p := worker.gate.pause) is not None and p.failures >= failed_probes)
        smtp_server.restart()

    restarter = threading.Thread(target=restart_after_failed_probes)
    restarter.start()
    try:
        return drain(worker)
    finally:
        restarter.join()
        worker.close()
        transport.close()


def test_an_outage_longer_than_every_attempt_fails_nothing(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    """The relay is down for longer than five attempts would last (retry base 0.01 s):
    nothing fails, since no attempt was spent on it."""
    store = FileStore(tmp_path / "spool")
    settings = Settings.load(
        store=store.url, transport=smtp_server.url, retry_base=0.01, max_attempts=2
    )
    with mailspool.request(store=store, settings=settings):
        for number in range(20):
            mailspool.send_mail(f"f{number}@example.com", f"note {number}", "<p>hi</p>")
    report = drain_through_outage(settings, store, smtp_server, 8)  # far more than max_attempts
    assert report.sent == 20
    assert not list(store.list(layout.FAILED))


def test_a_worker_waiting_out_an_outage_sleeps_between_probes(
    tmp_path: Path, smtp_server: SMTPSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the relay is down, the send loop sleeps until the gate lets a probe go, not
    round and round over the e-mails that wait for it (which took a core for as long
    as an outage lasted)."""
    store = FileStore(tmp_path / "spool")
    settings = Settings.load(store=store.url, transport=smtp_server.url, concurrency=4)
    with mailspool.request(store=store, settings=settings):
        for number in range(20):
            mailspool.send_mail(f"f{number}@example.com", f"note {number}", "<p>hi</p>")
    looks = []
    look = BatchRun._wait_time

    def counted(run: BatchRun, halted: bool) -> float:
        looks.append(1)
        return look(run, halted)

    monkeypatch.setattr(BatchRun, "_wait_time", counted)
    started = time.monotonic()
    report = drain_through_outage(settings, store, smtp_server, 3)
    waited = time.monotonic() - started
    assert report.sent == 20
    # a look a second at most while nothing can start, one for each result: a loop that
    # spun between probes looked hundreds of thousands of times
    assert len(looks) <= 20 * waited + 100, (len(looks), waited)


def test_an_email_older_than_its_queue_lifetime_fails_unsent(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    store = FileStore(tmp_path / "spool")
    settings = Settings.load(store=store.url, transport=smtp_server.url, queue_lifetime=3600)
    with mailspool.request(store=store, settings=settings):
        mailspool.send_mail("late@example.com", "too late", "<p>hi</p>")
    (key,) = [info.key for info in store.list(layout.QUEUE)]
    document = orjson.loads(store.get(key))
    document["createdAt"] = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    store.put(key, orjson.dumps(document))
    transport = open_delivery_transport(settings)
    worker = build_worker(settings, store, transport)
    try:
        report = drain(worker)
    finally:
        worker.close()
        transport.close()
    assert report.failed == 1
    assert smtp_server.envelopes == []
    (failed,) = [info.key for info in store.list(layout.FAILED)]
    record = orjson.loads(store.get(failed))
    assert "queue lifetime" in record["reason"]
    assert "MAILSPOOL_QUEUE_LIFETIME" in record["reason"]


# -- the record status reads -----------------------------------------------------------


def test_an_unreadable_pause_record_is_skipped() -> None:
    store = MemoryStore()
    now = datetime.now(UTC)
    record = Pause("smtp://relay:25", now, now + timedelta(seconds=8), "refused", 3)
    record_pause(store, "host:1:abc", record)
    store.put(f"{layout.PAUSED}odd.json", b'{"since": "0001-01-01T00:00:00+01:00"}')
    store.put(f"{layout.PAUSED}deep.json", b"[" * 5000)
    store.put(f"{layout.PAUSED}big.json", b" " * 10_000)
    assert read_pauses(store) == [
        Pause("smtp://relay:25", record.since, record.next_try, "refused", 3)
    ]


def test_status_with_no_outage_says_nothing_of_one(tmp_path: Path, smtp_server: SMTPSink) -> None:
    spool = tmp_path / "spool"
    hand_off(spool, 1)
    result = cli(spool, smtp_server, "status", "--json")
    assert json.loads(result.stdout)["paused"] == []
    assert "paused" not in cli(spool, smtp_server, "status").stdout


def test_the_dashboard_and_metrics_show_a_paused_transport(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    store = FileStore(spool)
    store.check()
    since = datetime.now(UTC) - timedelta(seconds=90)
    record = Pause("smtp://relay:25", since, since + timedelta(days=1), "421 busy", 4)
    record_pause(store, "host:1:abc", record)
    with running_dashboard(spool) as base:
        page = urllib.request.urlopen(f"{base}/", timeout=30).read().decode()
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=30).read().decode()
    assert 'id="paused"' in page
    assert "421 busy" in page
    assert "smtp://relay:25" in page
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    assert values["mailspool_transport_paused_seconds"] >= 90
    assert values["mailspool_transport_next_try_seconds"] > 3600
