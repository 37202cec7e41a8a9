"""One rate budget for every sender of an SES account: the worker leaves
``MAILSPOOL_PRIORITY_SHARE`` of the rate to priority mail, the Lambda's handler
invocations and its sweeper divide the rest, so that together they stay under
``MaxSendRate``.

SES runs as moto in server mode; its ``GetAccount`` (``MaxSendRate`` 14) is ours
(``tests/fixtures/moto_ses_quota.py``). The measurement replays each sender's rate
limiter on a clock the test moves (as every sender wants to send all the time) and
counts the sends that start in each window: no wall-clock timing.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

import mailspool
from mailspool.aws.runtime import open_runtime
from mailspool.config import Settings
from mailspool.producer.budget import priority_budget
from mailspool.ratelimit import RateLimiter
from mailspool.transports.open_transports import close_all, shared_transport
from tests.clock import Clock
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.moto_ses_quota import SESQuota

MAX_SEND_RATE = 14.0  # the fixture's GetAccount answer
WINDOW = 10.0  # seconds per counted window
SECONDS = 120.0


@pytest.fixture
def account(
    aws: MotoServer, ses_quota: SESQuota, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    monkeypatch.setenv("MAILSPOOL_TRANSPORT", "ses://us-east-1")
    monkeypatch.setenv("MAILSPOOL_STORE", "memory:budget")
    monkeypatch.setenv("MAILSPOOL_SENDER", "Shop <shop@example.com>")
    monkeypatch.setenv("MAILSPOOL_RATE_SENDERS", "2")  # the template: ReservedConcurrency
    close_all()  # a transport of an earlier test must not answer for this account
    yield
    close_all()


def starts(rate: float | None, burst: float, clock: Clock) -> list[float]:
    """When each send of a sender that always has mail starts, over ``SECONDS``, as its
    limiter (``mailspool.ratelimit``, the one every sender uses) hands out the turns."""
    assert rate is not None
    clock.now = 0.0
    limiter = RateLimiter(rate, burst=burst, clock=clock)
    moments: list[float] = []
    while clock.now < SECONDS:
        clock.now += limiter._reserve(1)
        moments.append(clock.now)
    return moments


def test_handler_sweeper_and_priority_sends_together_stay_under_max_send_rate(
    account: None,
) -> None:
    runtime = open_runtime()
    handlers = [runtime.worker(margin=1.0, owner=f"lambda:{i}") for i in range(2)]
    sweeper = runtime.worker(margin=1.0, owner="sweeper:1")
    priority = priority_budget(runtime.settings, runtime.transport)
    try:
        rates = [w.limiter.rate for w in [*handlers, sweeper]]
        assert rates == [pytest.approx(MAX_SEND_RATE * 0.9 / 3)] * 3  # 0.9 x 14 / (2 + 1)
        assert priority.rate == pytest.approx(MAX_SEND_RATE * 0.1)
        clock = Clock()
        moments = [m for r in rates for m in starts(r, 1.0, clock)]
        moments += starts(priority.rate, max(priority.rate or 1.0, 1.0), clock)
    finally:
        for worker in [*handlers, sweeper]:
            worker.close()
    windows = [sum(1 for m in moments if w <= m < w + WINDOW) for w in range(0, 110, 1)]
    bursts = 3 * 1.0 + 1.4  # what each limiter may let go at once
    assert max(windows) <= MAX_SEND_RATE * WINDOW + bursts
    assert min(windows) >= MAX_SEND_RATE * WINDOW - bursts  # the whole budget is used


def test_priority_mail_is_sent_while_the_worker_is_at_its_budget(
    account: None, moto_server: MotoServer
) -> None:
    runtime = open_runtime()
    worker = runtime.worker(margin=1.0, owner="lambda:busy")
    try:
        worker.limiter._reserve(10_000)
        assert worker.limiter._reserve(0) > 60
        sent = mailspool.send_mail("reset@example.org", "Your password", "Reset it", priority=True)
    finally:
        worker.close()
    assert sent is True
    (message,) = moto_server.ses_messages()
    assert message["destinations"]["ToAddresses"] == ["reset@example.org"]
    settings = Settings.load()
    transport = shared_transport(settings.priority_transport)
    assert priority_budget(settings, transport).rate == pytest.approx(1.4)
