"""The S3 store behind a faulty network: a fault-injecting proxy (``tests/fault_proxy.py``)
between boto3 and moto loses answers, drops connections and fails writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import boto3
import pytest

import mailspool
from mailspool.config import Settings
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.stores.s3 import S3Store, client_config
from mailspool.transports.memory import MemoryTransport
from tests.fault_proxy import FaultProxy
from tests.fixtures.moto_server import MotoServer

BUCKET = "mailspool-faults"


def lease_put(method: str, path: str) -> bool:
    return method == "PUT" and "/.leases/" in path


@pytest.fixture
def s3(aws: MotoServer) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def proxy(aws: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(aws.endpoint, seed=14) as proxy:
        yield proxy


def through(proxy: FaultProxy) -> S3Store:
    """A store whose every request crosses the proxy."""
    client = boto3.client("s3", endpoint_url=proxy.endpoint, config=client_config())
    return S3Store(bucket=BUCKET, prefix="spool", client=client)


def direct() -> S3Store:
    return S3Store(bucket=BUCKET, prefix="spool")


def test_a_claim_whose_answer_was_lost_is_still_ours(s3: Any, proxy: FaultProxy) -> None:
    store = through(proxy)
    proxy.drop_answer(lease_put)
    lease = store.claim("b", "me", 300)
    assert proxy.stats["reset_after"] == 1  # the PUT was applied, its answer lost
    assert lease is not None
    assert direct().claim("b", "another", 300) is None
    renewed = store.renew(lease, 300)  # the token is the ETag of the lease written
    store.release(renewed)
    assert direct().claim("b", "another", 300) is not None


def test_a_renewal_whose_answer_was_lost_keeps_the_claim(s3: Any, proxy: FaultProxy) -> None:
    store = through(proxy)
    lease = store.claim("b", "me", 300)
    assert lease is not None
    proxy.drop_answer(lease_put)
    renewed = store.renew(lease, 300)
    assert proxy.stats["reset_after"] == 1
    assert renewed.token != lease.token
    store.release(renewed)
    assert direct().claim("b", "another", 300) is not None


def test_the_worker_delivers_at_once_after_a_lost_claim_answer(s3: Any, proxy: FaultProxy) -> None:
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
