"""Peak memory of ``mailspool worker --drain`` on the largest batches the default limits
accept, beside a batch of 20 e-mails, in one run.

Each case is a fresh spool holding one batch, drained by the CLI with its defaults
(concurrency 32, the default limits) into a ``file://`` outbox; the figure is the worker
process's peak resident memory (``ru_maxrss`` from ``wait4``). The cases:

- the largest file: 32 MiB (``MAILSPOOL_MAX_BATCH_BYTES``) of 10000 e-mails
  (``MAILSPOOL_MAX_EMAILS_PER_BATCH``), 3 KB each;
- the largest file of inline attachments: 32 MiB holding three 7.5 MiB attachments;
- e-mails at the message limit: 32 e-mails (one per sender thread), each referring to
  blobs of 10 + 10 + 8 MiB (38 MiB as sent, under ``MAILSPOOL_MAX_MESSAGE_BYTES``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import HTML
from mailspool.spool import layout
from mailspool.stores.file import FileStore

_MIB = 1 << 20
META = {"from": "Blog <blog@example.com>", "contentType": "text/html", "charset": "utf-8"}


def email(i: int, body: str, attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "to": [f"reader{i}@example.org"],
        "subject": f"Post {i}",
        "message": body,
        "attachments": attachments or [],
    }


def put_batch(store: FileStore, emails: list[dict[str, Any]]) -> int:
    data = orjson.dumps({"version": 1, "meta": META, "emails": emails})
    store.put(layout.queue_key(layout.new_batch_id()), data)
    return len(data)


def small(store: FileStore) -> int:
    return put_batch(store, [email(i, HTML) for i in range(20)])


def largest_file(store: FileStore) -> int:
    body = "<p>" + "x" * 3240 + "</p>"
    return put_batch(store, [email(i, body) for i in range(10_000)])


def inline_attachments(store: FileStore) -> int:
    content = base64.b64encode(os.urandom(7 * _MIB + _MIB // 2)).decode()
    attachment = {"filename": "a.bin", "contentType": "application/octet-stream"}
    emails = [email(i, HTML, [{**attachment, "content": content}]) for i in range(3)]
    return put_batch(store, emails)


def blobs_at_the_message_limit(store: FileStore) -> int:
    references = []
    for n, size in enumerate((10 * _MIB, 10 * _MIB, 8 * _MIB)):
        content = os.urandom(size)
        digest = hashlib.sha256(content).hexdigest()
        store.put(layout.blob_key(digest), content)
        references.append(
            {"filename": f"{n}.bin", "contentType": "application/octet-stream", "sha256": digest}
        )
    return put_batch(store, [email(i, HTML, references) for i in range(32)])


def peak_of_drain(spool: Path, outbox: Path) -> tuple[int, int]:
    """The drain's peak resident memory in KiB, and the e-mails it wrote."""
    env = {
        **os.environ,
        "MAILSPOOL_STORE": f"file://{spool}",
        "MAILSPOOL_TRANSPORT": f"file://{outbox}",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "mailspool", "worker", "--drain", "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert worker.stderr is not None
    errors = worker.stderr.read()
    _, status, usage = os.wait4(worker.pid, 0)
    worker.returncode = os.waitstatus_to_exitcode(status)
    if worker.returncode != 0:
        raise SystemExit(f"worker failed: {errors.decode(errors='replace')}")
    return usage.ru_maxrss, sum(1 for _ in outbox.glob("*.eml"))


CASES: dict[str, Callable[[FileStore], int]] = {
    "20 e-mails": small,
    "largest file: 10000 e-mails": largest_file,
    "largest file: inline attachments": inline_attachments,
    "32 e-mails at the message limit (blobs)": blobs_at_the_message_limit,
}


def main() -> None:
    baseline = 0
    print(f"{'case':42} {'file MiB':>9} {'sent':>6} {'peak MiB':>9} {'ratio':>6}")
    for name, make in CASES.items():
        with tempfile.TemporaryDirectory() as folder:
            spool, outbox = Path(folder) / "spool", Path(folder) / "outbox"
            size = make(FileStore(spool))
            peak, sent = peak_of_drain(spool, outbox)
        baseline = baseline or peak
        print(f"{name:42} {size / _MIB:9.1f} {sent:6d} {peak / 1024:9.0f} {peak / baseline:6.1f}")


if __name__ == "__main__":
    main()
