"""SES calls per N e-mails that share their content: ``SendBulkEmail`` against one
``SendEmail`` each (``ses://REGION?bulk=false``), side by side in one run.

A worker with its defaults delivers one post to N followers (one batch: the same
sender, subject and bodies, one recipient each) through the SES transport, against moto
in server mode (with the ``SendBulkEmail`` handler of ``tests/fixtures/moto_ses_bulk.py``,
which moto lacks). botocore's ``before-send`` event counts the calls. The wall time of a
delivery is printed as a ratio too, but it is moto's work on this machine (which builds
the MIME of each entry in Python), not SES's: the count of calls is the figure that
carries over to SES, where each call is an HTTPS round trip.
Run: ``python3 dev.py bench ses``.
"""

from __future__ import annotations

import collections
import os
import time
from typing import Any

import boto3

import mailspool
from mailspool.config import Settings
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.message import Message
from mailspool.stores.memory import MemoryStore
from mailspool.transports.ses import SESTransport

SENDER = "News <news@example.com>"
SIZES = (1, 50, 51, 120, 1000)


def _deliver(count: int, url: str) -> tuple[collections.Counter[str], float]:
    """The SES calls and seconds of one worker delivering a post to ``count`` followers."""
    calls: collections.Counter[str] = collections.Counter()

    def counted(event_name: str, **_: Any) -> None:
        calls[event_name.rsplit(".", 1)[-1]] += 1

    store = MemoryStore()
    with mailspool.request(store=store, settings=Settings.load(store="memory:bench")) as scope:
        for i in range(count):
            to = (f"reader{i}@example.org",)
            message = Message(to=to, subject="New post", html="<p>Up.</p>", sender=SENDER)
            mailspool.send_message(message, priority=False)
    with SESTransport.from_url(url, default_sender=SENDER) as ses:
        ses._client.meta.events.register("before-send.sesv2", counted)
        worker = Worker(store, ses, options=WorkerOptions(default_sender=SENDER))
        started = time.perf_counter()
        try:
            sent = sum(worker.deliver(key).sent for key in scope.keys)
        finally:
            worker.close()
        if sent != count:
            raise RuntimeError(f"{url}: {sent} of {count} e-mails sent")
        return calls, time.perf_counter() - started


def main() -> None:
    from tests.fixtures.moto_server import running_moto_server

    with running_moto_server() as moto:
        os.environ.update(moto.environment())
        print(f"{'e-mails':>8} {'bulk calls':>26} {'one by one':>16} {'calls':>7} {'time':>7}")
        for count in SIZES:
            moto.reset()
            boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
            bulk, bulk_time = _deliver(count, "ses://us-east-1")
            single, single_time = _deliver(count, "ses://us-east-1?bulk=false")
            listed = ", ".join(f"{n} {name}" for name, n in sorted(bulk.items()))
            ratio = sum(single.values()) / sum(bulk.values())
            print(
                f"{count:>8} {listed:>26} {sum(single.values()):>6} SendEmail "
                f"{ratio:>6.1f}x {single_time / bulk_time:>6.1f}x"
            )
