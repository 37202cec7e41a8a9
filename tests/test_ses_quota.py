"""SES's 24-hour quota: near ``Max24HourSend`` deferred mail waits for the window, it
does not fail and spends no attempt.

The worker and the SES transport run against moto in server mode; moto lacks SES v2
``GetAccount`` and enforces no quota, so the server runs ours
(``tests/fixtures/moto_ses_quota.py``). The worker's window runs on a clock the test
moves; a deadline (as the Lambda's) makes a batch that must wait end ``paused``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import mailspool
from mailspool.aws.metrics import batch_metrics
from mailspool.cli.aws import aws as aws_cli
from mailspool.config import Settings
from mailspool.delivery.quota import DailyQuota
from mailspool.delivery.report import BatchReport, BatchStatus
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.message import Message
from mailspool.spool import layout
from mailspool.spool.ledger import read_entries
from mailspool.spool.pauses import read_pauses
from mailspool.spool.quota_record import read_quota
from mailspool.spool.records import LedgerState
from mailspool.stores.memory import MemoryStore
from mailspool.transports.base import SendQuota
from mailspool.transports.ses import SESTransport
from mailspool.web.metrics import render_metrics
from tests.clock import Clock
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.moto_ses_quota import SESQuota

SENDER = "Shop <shop@example.com>"
REFRESH = 900.0  # the worker asks SES again after this long (DailyQuota's default)


@pytest.fixture
def ses(aws: MotoServer) -> Iterator[SESTransport]:
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    with closing(SESTransport(region="us-east-1", bulk=False)) as transport:
        yield transport


def queue(store: MemoryStore, count: int) -> str:
    """``count`` e-mails in one batch; its key."""
    messages = [
        Message(to=(f"user{i}@example.org",), subject=f"Order {i}", text="Shipped.", sender=SENDER)
        for i in range(count)
    ]
    with mailspool.request(store=store, settings=Settings.load(store="memory:unused")) as scope:
        for message in messages:
            mailspool.send_message(message, priority=False)
    (key,) = scope.keys
    return key


def worker(store: MemoryStore, ses: SESTransport, clock: Clock, seed: SendQuota | None) -> Worker:
    options = WorkerOptions(concurrency=4, default_sender=SENDER, clock=clock, priority_share=0.0)
    return Worker(store, ses, options=options, quota=seed)


def states(store: MemoryStore, key: str) -> Sequence[LedgerState]:
    return [e.state for e in read_entries(store, layout.queued_batch_id(key)).values()]


def test_a_quota_of_100_with_150_emails_sends_100_and_the_rest_when_the_window_moves(
    ses: SESTransport, ses_quota: SESQuota, moto_server: MotoServer
) -> None:
    ses_quota.max_24h = 100
    store, clock = MemoryStore(), Clock()
    key = queue(store, 150)
    delivering = worker(store, ses, clock, ses.send_quota())
    try:
        report = delivering.deliver(key, deadline=lambda: 600.0)
        assert (report.sent, report.failed, report.status) == (100, 0, BatchStatus.PAUSED)
        assert len(moto_server.ses_messages()) == 100
        (pause,) = read_pauses(store)  # what `status` and the dashboard show
        assert "24-hour quota" in pause.reason
        assert "Max24HourSend" in pause.reason
        assert pause.next_try > pause.since
        quota = read_quota(store)  # the headroom `status`, the dashboard and /metrics show
        assert quota is not None
        assert (quota.used, quota.limit, quota.headroom) == (100, 100, 0.0)
        assert b"mailspool_quota_headroom 0.0" in render_metrics(store)

        clock.now += REFRESH  # SES still counts the 100 sent: the 50 keep waiting
        report = delivering.deliver(key, deadline=lambda: 600.0)
        assert (report.sent, report.failed, report.status) == (0, 0, BatchStatus.PAUSED)

        ses_quota.window_moved()
        clock.now += REFRESH
        report = delivering.deliver(key, deadline=lambda: 600.0)
        assert (report.sent, report.failed, report.status) == (50, 0, BatchStatus.FINISHED)
    finally:
        delivering.close()
    entries = read_entries(store, layout.queued_batch_id(key)).values()
    assert sorted({e.state for e in entries}) == [LedgerState.SENT]
    assert {e.attempts for e in entries} == {1}  # waiting spent no attempt
    assert len(moto_server.ses_messages()) == 150
    assert read_pauses(store) == []


def test_daily_message_quota_exceeded_from_ses_waits_and_spends_no_attempt(
    ses: SESTransport, ses_quota: SESQuota, moto_server: MotoServer
) -> None:
    ses_quota.max_24h = 30  # SES enforces 30, the worker was told 1000 (another sender)
    store, clock = MemoryStore(), Clock()
    key = queue(store, 40)
    delivering = worker(store, ses, clock, SendQuota(0, 1000))
    try:
        report = delivering.deliver(key, deadline=lambda: 600.0)
        assert (report.sent, report.failed, report.status) == (30, 0, BatchStatus.PAUSED)
        assert delivering.gate.pause is not None
        assert "Daily message quota exceeded" in delivering.gate.pause.reason
        ses_quota.window_moved()
        clock.now += REFRESH
        report = delivering.deliver(key, deadline=lambda: 600.0)
        assert (report.sent, report.failed) == (10, 0)
    finally:
        delivering.close()
    entries = read_entries(store, layout.queued_batch_id(key)).values()
    assert {e.attempts for e in entries} == {1}
    assert len(entries) == 40


def test_get_account_seeds_the_quota_and_an_odd_answer_is_no_quota(
    ses: SESTransport, ses_quota: SESQuota
) -> None:
    ses_quota.max_24h = 200
    assert ses.send_quota() == SendQuota(0.0, 200.0)
    ses_quota.max_24h = -1  # SES v1 said "-1: unlimited"; no quota to keep
    assert ses.send_quota() is None


def test_priority_keeps_its_share_of_the_quota() -> None:
    clock = Clock()
    quota = DailyQuota(SendQuota(0, 100), reserve_share=0.1, clock=clock)
    assert [quota.take(1) for _ in range(90)] == [0.0] * 90
    assert quota.take(1) == pytest.approx(86400.0)  # the first send leaves the window
    figures = quota.figures()
    assert (figures.used, figures.cap, figures.headroom) == (90, 90, pytest.approx(0.1))
    clock.now = 86400.0
    assert quota.take(1) == 0.0


def test_headroom_is_an_emf_metric_and_an_alarm_at_80_percent_used() -> None:
    report = BatchReport("queue/x.json", "x", BatchStatus.PAUSED, sent=3)
    document = batch_metrics(report, throttled=0, function="deliver", headroom=0.15)
    assert document["QuotaHeadroom"] == 15.0
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert {"Name": "QuotaHeadroom", "Unit": "Percent"} in directive["Metrics"]
    result = CliRunner().invoke(aws_cli, ["template"])
    alarm = cfn_yaml.loads(result.output)["Resources"]["QuotaHeadroomAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Threshold"]) == ("QuotaHeadroom", 20)
    assert alarm["ComparisonOperator"] == "LessThanThreshold"


def test_an_odd_quota_record_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    for data in (
        b"[]",
        b'{"used": -1, "max24HourSend": 5, "deferredCap": 5, "at": "x"}',
        b"{" * 2000,
    ):
        store.put(layout.QUOTA_KEY, data)
        assert read_quota(store) is None
    assert "skipped the quota record" in caplog.text


@given(
    st.lists(st.tuples(st.integers(1, 60), st.floats(0, 20000)), max_size=60),
    st.integers(1, 500),
    st.floats(0, 0.9),
)
def test_deferred_mail_never_passes_its_cap_in_any_window(
    sends: list[tuple[int, float]], limit: int, share: float
) -> None:
    clock = Clock()
    quota = DailyQuota(SendQuota(0, limit), reserve_share=share, clock=clock)
    taken: list[tuple[float, int]] = []
    for units, step in sends:
        clock.now += step
        if quota.take(units) == 0:
            taken.append((clock.now, units))
        in_window = sum(u for t, u in taken if t > clock.now - 86400.0)
        # an e-mail larger than the cap goes alone, into an empty window
        assert in_window <= max(limit * (1 - share), max((u for _, u in taken), default=0))
