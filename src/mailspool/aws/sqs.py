"""``mailspool worker --sqs-queue URL``: deliver batches announced by bucket notifications.

Long-polls the queue (20 s), hands the messages to the same code as the Lambda handler
(so every event shape is understood) with the worker's own options, deletes the messages whose batches were delivered
or are held by another worker, and leaves the others to come back after the queue's
visibility timeout. Before each receive it moves the scheduled batches that are due into
``queue/`` (their notifications then arrive like any other), so scheduled e-mail goes
within one long poll of its time even without the sweeper.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mailspool._backends import BOTO3_SESSION_LOCK
from mailspool.aws.lambda_handler import deliver_event
from mailspool.delivery.worker import Worker
from mailspool.triggers.local import promote

__all__ = ["consume"]

log = logging.getLogger("mailspool.aws")


def consume(
    worker: Worker,
    queue_url: str,
    *,
    wait_seconds: int = 20,
    client: Any = None,
    on_round: Callable[[int], None] | None = None,
) -> None:
    """Receive, deliver and delete until ``worker.stop()``."""
    sqs = client if client is not None else _sqs_client()
    while not worker.stopping.is_set():
        promote(worker.store)
        try:
            answer = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
            )
        except Exception as err:  # the queue is unreachable: say so, try again
            log.error("cannot receive from %s: %s", queue_url, err)
            worker.stopping.wait(5)
            continue
        messages: list[Any] = list(answer.get("Messages", []))
        if messages:
            consume_messages(worker, sqs, queue_url, messages)
        if on_round is not None:
            on_round(len(messages))


def consume_messages(worker: Worker, sqs: Any, queue_url: str, messages: list[Any]) -> list[str]:
    """Deliver the batches of received messages; delete the settled ones; the ids kept."""
    records = [
        {"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs"} for m in messages
    ]
    answer = deliver_event({"Records": records}, worker, request_id="sqs-worker")
    kept = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    for message in messages:
        if message["MessageId"] not in kept:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return kept


def _sqs_client() -> Any:
    import boto3

    with BOTO3_SESSION_LOCK:  # the worker's threads may be making clients at this moment
        return boto3.client("sqs")
