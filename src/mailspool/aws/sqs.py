"""``mailspool worker --sqs-queue URL``: deliver batches announced by bucket notifications.

Long-polls the queue (20 s), hands the messages to the same code as the Lambda handler
(so every event shape is understood) with the worker's own options, deletes the messages
whose batches were delivered or are held by another worker, and leaves the others to come
back after the queue's visibility timeout. One line per batch goes to ``on_batch``.
Before each receive it moves the scheduled batches that are due into ``queue/`` (their
notifications then arrive like any other), so scheduled e-mail goes within one long poll
of its time even without the sweeper.

The long poll runs on a thread of its own, so SIGTERM (``worker.stop()``) ends the worker
at once instead of after the poll: a poll left running is dropped with the process, and
any message it was about to receive comes back after the visibility timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailspool._backends import boto3_client
from mailspool.aws.lambda_handler import deliver_event
from mailspool.aws.metrics import DEFAULT_NAMESPACE
from mailspool.delivery.worker import BatchReport, Worker
from mailspool.triggers.local import promote

__all__ = ["consume"]

log = logging.getLogger("mailspool.aws")
_STOP_CHECK = 0.1  # seconds between looks at the stop flag while a poll is out


def consume(
    worker: Worker,
    queue_url: str,
    *,
    wait_seconds: int = 20,
    client: Any = None,
    on_round: Callable[[int], None] | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> None:
    """Receive, deliver and delete until ``worker.stop()``; ``namespace``: the
    ``metrics_namespace`` setting, for each batch's metrics line."""
    sqs = client if client is not None else _sqs_client()
    while not worker.stopping.is_set():
        promote(worker.store)
        poll = _Poll(sqs, queue_url, wait_seconds)
        if not poll.wait(worker.stopping):
            return  # stopped while the poll was out
        if poll.error is not None:  # the queue is unreachable: say so, try again
            log.error("cannot receive from %s: %s", queue_url, poll.error)
            worker.stopping.wait(5)
            continue
        if poll.messages:
            consume_messages(
                worker, sqs, queue_url, poll.messages, on_batch=on_batch, namespace=namespace
            )
        if on_round is not None:
            on_round(len(poll.messages))


@dataclass(slots=True)
class _Poll:
    """One ``ReceiveMessage`` long poll on a daemon thread."""

    sqs: Any
    queue_url: str
    wait_seconds: int
    messages: list[Any] = field(default_factory=list)
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, stopping: threading.Event) -> bool:
        """Start the poll and wait for it; False if ``stopping`` is set first."""
        threading.Thread(target=self._run, name="mailspool-sqs-poll", daemon=True).start()
        while not self.done.wait(_STOP_CHECK):
            if stopping.is_set():
                return False
        return True

    def _run(self) -> None:
        try:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=self.wait_seconds,
            )
            self.messages = list(answer.get("Messages", []))
        except Exception as err:
            self.error = err
        finally:
            self.done.set()


def consume_messages(
    worker: Worker,
    sqs: Any,
    queue_url: str,
    messages: list[Any],
    *,
    on_batch: Callable[[BatchReport], None] | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> list[str]:
    """Deliver the batches of received messages; delete the settled ones; the ids kept."""
    records = [
        {"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs"} for m in messages
    ]
    answer = deliver_event(
        {"Records": records},
        worker,
        request_id="sqs-worker",
        on_batch=on_batch,
        namespace=namespace,
    )
    kept = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    for message in messages:
        if message["MessageId"] not in kept:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return kept


def _sqs_client() -> Any:
    # under the session lock: the worker's threads may be making clients at this moment
    return boto3_client("sqs", user="the SQS worker")
