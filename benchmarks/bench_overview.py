"""The overview of a store holding 1,000,000 e-mails: counts kept as batches finish
(``tally/``) against re-reading every ledger, side by side in one run.

The store: 9,990 finished batches of 100 e-mails (100 of them failed), finished over
the last three hours as a worker would have finished them, and 10 batches of 100
pending. Timed: the whole ``mailspool status --json`` process, ``GET /`` and ``GET
/metrics`` on a running ``mailspool serve``, and, for comparison, reading every ledger
of ``done/`` as ``status`` did before it kept counts (that read is what a store without
a total pays once).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

from benchmarks.common import best_of
from mailspool.ops.status import collect_status
from mailspool.spool import layout, tally
from mailspool.spool.ledger import read_entries
from mailspool.stores.file import FileStore

DONE_BATCHES = 9_990
PENDING_BATCHES = 10
PER_BATCH = 100
FAILED_BATCHES = 100


def build(root: Path, now: float) -> None:
    """Write the store's files as the producer, the worker and the tally would."""
    for folder in ("queue", "done", "ledger", "failed", "tally/log"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    segments: dict[str, list[bytes]] = {}
    for number in range(DONE_BATCHES):
        finished = now - 3 * 3600 + number * (3 * 3600 / DONE_BATCHES)
        batch_id = layout.new_batch_id(finished - 60)
        failed = 1 if number < FAILED_BATCHES else 0
        _write_batch(root / layout.done_key(batch_id), batch_id)
        entries = [
            {"i": i, "s": "sent", "id": f"<{batch_id}.{i}@example.com>", "a": 1}
            for i in range(PER_BATCH - failed)
        ]
        if failed:
            entries.append({"i": PER_BATCH - 1, "s": "failed", "reason": "550 5.1.1", "a": 1})
            record = {"batch": batch_id, "index": PER_BATCH - 1, "reason": "550 5.1.1"}
            (root / layout.failed_key(batch_id, PER_BATCH - 1)).write_bytes(orjson.dumps(record))
        (root / layout.ledger_key(batch_id)).write_bytes(orjson.dumps(entries) + b"\n")
        counts = {"sent": PER_BATCH - failed, "failed": failed, "refused": 0}
        line = orjson.dumps({"b": batch_id, "done": 1, **counts, "t": int(finished)})
        segments.setdefault(tally.segment(finished), []).append(line)
    for segment, lines in segments.items():
        (root / tally.LOG / segment).write_bytes(b"\n".join(lines) + b"\n")
    for number in range(PENDING_BATCHES):
        batch_id = layout.new_batch_id(now - 600 + number)
        _write_batch(root / layout.queue_key(batch_id), batch_id)


def _write_batch(path: Path, batch_id: str) -> None:
    emails = [
        {"to": [f"follower{i}@example.com"], "subject": "New post", "message": "<p>Hi</p>"}
        for i in range(PER_BATCH)
    ]
    document = {"version": 1, "id": batch_id, "meta": {"from": "blog@example.com"}}
    path.write_bytes(orjson.dumps({**document, "emails": emails}))


def status_process(root: Path) -> dict[str, int]:
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "status", "--json", "--store", f"file://{root}"],
        capture_output=True,
        check=True,
        text=True,
    )
    counts: dict[str, int] = json.loads(result.stdout)
    return counts


def reread_every_ledger(root: Path) -> int:
    store = FileStore(root)
    sent = 0
    for info in store.list(layout.DONE):
        entries = read_entries(store, layout.batch_id_from_key(info.key))
        sent += tally.ledger_counts(entries.values()).sent
    return sent


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        body: bytes = response.read()
    return body


def time_server(root: Path) -> tuple[float, float, float]:
    port = 18025
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailspool",
            "serve",
            "--port",
            str(port),
            "--store",
            f"file://{root}",
        ],
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                fetch(f"{base}/static/style.css")
                break
            except OSError:
                time.sleep(0.05)
        first = best_of(1, lambda: fetch(f"{base}/"))  # counts the rates too
        page = best_of(5, lambda: fetch(f"{base}/"))
        scrape = best_of(5, lambda: fetch(f"{base}/metrics"))
    finally:
        process.terminate()
        process.wait()
    return first, page, scrape


def main() -> dict[str, float]:
    """Print the times; return them in milliseconds."""
    with tempfile.TemporaryDirectory(prefix="mailspool-bench-overview-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        build(root, time.time())
        print(
            f"store of {(DONE_BATCHES + PENDING_BATCHES) * PER_BATCH:,} e-mails written in {time.perf_counter() - started:.1f} s"
        )
        counts = status_process(root)  # folds the closed segments once, as any first read
        assert counts["total"] == (DONE_BATCHES + PENDING_BATCHES) * PER_BATCH, counts
        print(
            f"status --json: {counts['pending']} pending, {counts['sent']} sent, {counts['failed']} failed, total {counts['total']}"
        )
        whole = best_of(5, lambda: status_process(root))
        store = FileStore(root)
        counting = best_of(5, lambda: collect_status(store))
        reread = best_of(3, lambda: reread_every_ledger(root))
        first, page, scrape = time_server(root)
        print(f"mailspool status --json, whole process:   {whole * 1000:7.0f} ms")
        print(f"collect_status (what status counts):      {counting * 1000:7.1f} ms")
        print(f"first GET / on mailspool serve (+ rates):  {first * 1000:7.1f} ms")
        print(f"GET / on mailspool serve:                  {page * 1000:7.1f} ms")
        print(f"GET /metrics on mailspool serve:           {scrape * 1000:7.1f} ms")
        print(f"re-reading every ledger of done/ (before): {reread * 1000:7.0f} ms")
        print(
            f"ratios: re-read / collect_status = {reread / counting:.0f}x, "
            f"re-read / GET / = {reread / page:.0f}x"
        )
        shutil.rmtree(root / "tally")  # as a version without counts left the store
        once = best_of(1, lambda: status_process(root))
        print(
            f"status --json on that store without tally/ (counted once in full): {once * 1000:.0f} ms"
        )
    times = (whole, counting, first, page, scrape, reread, once)
    return dict(zip(OVERVIEW_FIGURES, (seconds * 1000 for seconds in times), strict=True))


#: What ``main`` returns, each in milliseconds.
OVERVIEW_FIGURES = (
    "status_process_ms",
    "collect_status_ms",
    "first_page_ms",
    "page_ms",
    "metrics_ms",
    "reread_ms",
    "no_tally_ms",
)
