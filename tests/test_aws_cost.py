"""AWS cost per million e-mails, from the S3 and SQS requests a run makes against moto.

botocore's ``before-send`` event counts every HTTP request the store's, the queue's and
SES's clients make (retries included) while a request scope writes a batch and the
handler's code path (``deliver_event``, the one the Lambda handler calls) delivers it.
Lambda's cost is its GB-seconds while it sends at SES's 14 e-mails/s, with the memory
and architecture the template deploys. ``docs/aws.md`` shows these figures.

The ledger commits at most every ``MAILSPOOL_LEDGER_COMMIT_MS`` of the time the worker
measures it in: here a clock that moves 1/14 s with each e-mail SES accepts, so the
number of commits is that of a run at SES's rate, whatever this machine's speed. One
sender thread keeps the order of sends and commits, hence the counts, the same on every
run (the commits per second do not depend on the concurrency).
"""

from __future__ import annotations

import collections
import math
from typing import Any

from cfnlint.decode import cfn_yaml

from mailspool.aws.lambda_handler import deliver_event
from mailspool.aws.runtime import LEASE_TTL
from mailspool.aws.template import template_text
from mailspool.config import Settings
from mailspool.delivery.factory import build_worker
from mailspool.spool import layout
from mailspool.transports.open_transports import shared_transport
from tests.test_aws_handler import Stack, hand_off
from tests.test_aws_handler import stack as stack  # the fixture: S3 notifying SQS, SES

SES_RATE = 14.0  # e-mails a second: SES's production rate in a new account's region
#: one invocation's sends at that rate in 50 s; a continuation batch costs what a batch
#: does, so batches of this size stand for a large batch handed on from invocation to
#: invocation
EMAILS = 700
#: us-east-1, 2024 (docs/aws.md)
S3_PUT_CLASS = 0.005 / 1000  # PUT, COPY, POST, LIST
S3_GET_CLASS = 0.0004 / 1000  # GET, HEAD and the rest (DELETE is free)
SQS_REQUEST = 0.40 / 1_000_000
LAMBDA_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
LAMBDA_REQUEST = 0.20 / 1_000_000
PER_MILLION = 1_000_000 / EMAILS


class Requests(collections.Counter[str]):
    """HTTP requests by ``service.Operation``, counted from botocore's events."""

    def __init__(self) -> None:
        super().__init__()
        self._clients: list[Any] = []

    def count(self, client: Any) -> None:
        self._clients.append(client)
        client.meta.events.register("before-send", self._sent)

    def stop(self) -> None:
        for client in self._clients:
            client.meta.events.unregister("before-send", self._sent)

    def _sent(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        self[f"{service}.{operation}"] += 1


class SesClock:
    """The time the ledger's interval is measured in: 1/14 s more per e-mail SES accepts."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self) -> float:
        return self.sent / SES_RATE  # from the count: no rounding piles up

    def accepted(self, **_: Any) -> None:
        self.sent += 1


def s3_cost(requests: Requests) -> float:
    free = {"s3.DeleteObject", "s3.DeleteObjects"}
    put_class = ("s3.Put", "s3.Copy", "s3.Post", "s3.List")
    cost = 0.0
    for name, count in requests.items():
        if name.startswith("s3.") and name not in free:
            cost += count * (S3_PUT_CLASS if name.startswith(put_class) else S3_GET_CLASS)
    return cost


def deployed_function() -> tuple[int, str]:
    """The delivery function's memory (MB) and architecture, as the template deploys it."""
    template = cfn_yaml.loads(template_text())
    function = template["Resources"]["DeliverFunction"]["Properties"]
    memory = template["Parameters"]["MemorySize"]["Default"]
    return int(memory), function["Architectures"][0]


def test_aws_costs_at_most_a_dollar_per_million_emails(stack: Stack) -> None:
    requests, clock = Requests(), SesClock()
    store = stack.store
    requests.count(store._client)  # type: ignore[attr-defined]
    requests.count(stack.sqs)
    ses = shared_transport("ses://us-east-1")
    ses._client.meta.events.register("after-call.sesv2.SendEmail", clock.accepted)  # type: ignore[attr-defined]

    keys = hand_off(EMAILS)
    records = stack.receive()
    worker = build_worker(
        Settings.load(),
        store,
        ses,
        owner="lambda:cost",
        lease_ttl=LEASE_TTL,
        deadline_margin=5.0,
        concurrency=1,
        clock=clock,
    )
    try:
        answer = deliver_event({"Records": records}, worker, remaining=lambda: 600.0)
    finally:
        worker.close()
    for record in records:
        stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=record["receiptHandle"])
    requests.stop()  # what the test reads below to check the run is not counted

    assert answer["batchItemFailures"] == []
    assert len(keys) == len(records) == 1
    assert len(stack.moto.ses_messages()) == EMAILS
    commits = len(store.read_log(layout.ledger_key(layout.queued_batch_id(keys[0]))))
    assert commits == math.ceil(EMAILS / SES_RATE)  # one a second at SES's rate

    memory, architecture = deployed_function()
    seconds = EMAILS / SES_RATE
    lambda_cost = memory / 1024 * seconds * LAMBDA_GB_SECOND[architecture] + LAMBDA_REQUEST
    # S3 sends the notification to SQS: one more request per batch than the test sees
    sqs_cost = (sum(n for k, n in requests.items() if k.startswith("sqs.")) + 1) * SQS_REQUEST
    total = (s3_cost(requests) + sqs_cost + lambda_cost) * PER_MILLION
    print(  # the figures docs/aws.md shows (pytest -s)
        f"\nrequests per {EMAILS} e-mails: {dict(sorted(requests.items()))}"
        f"\nper million: S3 ${s3_cost(requests) * PER_MILLION:.3f}, SQS ${sqs_cost * PER_MILLION:.4f},"
        f" Lambda ${lambda_cost * PER_MILLION:.3f} ({memory} MB {architecture}), total ${total:.3f}"
    )
    assert total <= 1.00
