"""The S3 store behind a faulty network: a fault-injecting proxy (``tests/fault_proxy.py``)
between boto3 and moto loses answers, drops connections and fails writes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import closing

import boto3
import pytest
from botocore.config import Config

import mailspool
from mailspool.config import Settings
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.ops.status import collect_status
from mailspool.stores.s3 import S3Store
from mailspool.stores.s3_support import client_config
from mailspool.transports.memory import MemoryTransport
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.local import drain
from tests.fault_proxy import FaultProxy, Faults
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.smtp_server import SMTPSink
from tests.test_s3_store import BUCKET, s3  # noqa: F401 - the bucket's fixture

pytestmark = pytest.mark.usefixtures("s3")


def lease_put(method: str, path: str) -> bool:
    return method == "PUT" and "/.leases/" in path


@pytest.fixture
def proxy(aws: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(aws.endpoint, seed=14) as proxy:
        yield proxy


def through(proxy: FaultProxy, read_timeout: float = 30.0) -> S3Store:
    """A store whose every request crosses the proxy."""
    config = client_config().merge(Config(read_timeout=read_timeout, connect_timeout=2))
    client = boto3.client("s3", endpoint_url=proxy.endpoint, config=config)
    return S3Store(bucket=BUCKET, prefix="spool", client=client)


def direct() -> S3Store:
    return S3Store(bucket=BUCKET, prefix="spool")


def test_a_claim_whose_answer_was_lost_is_still_ours(proxy: FaultProxy) -> None:
    store = through(proxy)
    proxy.drop_answer(lease_put)
    lease = store.claim("b", "me", 300)
    assert proxy.stats["reset_after"] == 1  # the PUT was applied, its answer lost
    assert lease is not None
    assert direct().claim("b", "another", 300) is None
    renewed = store.renew(lease, 300)  # the token is the ETag of the lease written
    store.release(renewed)
    assert direct().claim("b", "another", 300) is not None


def test_a_renewal_whose_answer_was_lost_keeps_the_claim(proxy: FaultProxy) -> None:
    store = through(proxy)
    lease = store.claim("b", "me", 300)
    assert lease is not None
    proxy.drop_answer(lease_put)
    renewed = store.renew(lease, 300)
    assert proxy.stats["reset_after"] == 1
    assert renewed.token != lease.token
    store.release(renewed)
    assert direct().claim("b", "another", 300) is not None


def test_the_worker_delivers_at_once_after_a_lost_claim_answer(proxy: FaultProxy) -> None:
    store = through(proxy)
    with mailspool.request(store=store, settings=Settings.load(store="memory:unused")) as scope:
        mailspool.send_mail(["a@example.com", "b@example.com"], "s", "m")
    [key] = scope.keys
    proxy.drop_answer(lease_put)
    transport = MemoryTransport()
    with closing(Worker(store, transport, options=WorkerOptions(concurrency=2))) as worker:
        report = worker.deliver(key)
    assert (report.status, report.sent) == ("finished", 1)
    assert proxy.stats["reset_after"] == 1
    assert len(transport.outbox) == 1


REQUESTS, PER_REQUEST = 20, 50
STORE_FAULTS = {"PUT": Faults(error=0.30, reset_before=0.08, reset_after=0.08, hang=0.04)}


@pytest.mark.slow
def test_store_faults_lose_nothing_and_repeat_almost_nothing(
    proxy: FaultProxy, smtp_server: SMTPSink
) -> None:
    """1000 e-mails from 20 requests, S3 behind the proxy failing PUTs: 30% answered 503,
    8% reset before and 8% after reaching S3, 4% held longer than the client waits.
    Within three drains every e-mail arrives, at most 1% twice, and status adds up."""
    proxy.set_faults(STORE_FAULTS)
    proxy.hang_seconds = 1.5
    store = through(proxy, read_timeout=1.0)
    settings = Settings.load(store="memory:unused")
    for request in range(REQUESTS):
        with mailspool.request(store=store, settings=settings):
            for i in range(PER_REQUEST):
                mailspool.send_mail(f"u{request * PER_REQUEST + i}@example.com", "s", "m")
    with closing(SMTPTransport.from_url(smtp_server.url)) as transport:
        for _ in range(3):
            options = WorkerOptions(concurrency=8, retry_base=0.01, retry_cap=0.1)
            with closing(Worker(store, transport, options=options)) as worker:
                drain(worker)
    assert sum(proxy.stats.values()) > 50  # the faults happened
    assert proxy.stats["reset_after"] > 0
    arrived = Counter(rcpt for e in smtp_server.envelopes for rcpt in e.rcpt_tos)
    expected = {f"u{i}@example.com" for i in range(REQUESTS * PER_REQUEST)}
    assert set(arrived) == expected  # 0 lost
    extra = sum(count - 1 for count in arrived.values())
    assert extra <= len(expected) // 100
    status = collect_status(direct())
    assert (status.pending, status.sent, status.total) == (0, len(expected), len(expected))
