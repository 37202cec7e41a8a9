"""HTTP connection pools sized to the threads that use them, so that no thread opens a
connection outside the pool (urllib3: "Connection pool is full, discarding")."""

from __future__ import annotations

from contextlib import closing
from typing import Any

import boto3

from mailspool.config import Settings
from mailspool.delivery.factory import delivery_url
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.stores.s3 import S3Store
from mailspool.transports.memory import MemoryTransport
from mailspool.transports.ses import SESTransport
from mailspool.triggers.local import drain
from tests.fixtures.moto_server import MotoServer


def pool(client: Any) -> int:
    size: int = client.meta.config.max_pool_connections
    return size


def test_the_ses_pool_follows_the_concurrency(aws: MotoServer) -> None:
    settings = Settings.load(transport="ses://us-east-1", concurrency=70)
    url = delivery_url(settings)
    assert url == "ses://us-east-1?max_connections=70"
    with closing(SESTransport.from_url(url)) as transport:
        assert pool(transport._client) == 70


def test_a_drain_sizes_the_s3_pool_to_its_threads(aws: MotoServer) -> None:
    boto3.client("s3").create_bucket(Bucket="pools")
    with closing(S3Store(bucket="pools", prefix="p")) as store:
        assert pool(store._client) == 32
        worker = Worker(store, MemoryTransport(), options=WorkerOptions(concurrency=40))
        with closing(worker):
            drain(worker)
        assert pool(store._client) >= 40 + 40
