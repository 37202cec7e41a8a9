"""The suppression check with 1,000,000 suppressed addresses (issue "Feedback loop").

Prints, from one run on this machine, side by side:

- one check (a recipient looked up in the store, nothing cached) with 1,000,000
  entries and with 1,000: the ratio shows that the cost does not grow with the list;
- one check answered from the in-process cache;
- the worker delivering the same batch to a memory transport from a store holding
  1,000,000 suppressed addresses and from one holding none: the per-e-mail cost the
  check adds to a whole send;
- what reading the whole list once costs (listing its keys), which a send never does.

The list is written straight into the file store's layout (the same keys and JSON the
store writes, without an fsync per file): writing a million entries through
``Store.put`` would fsync a million times and take most of an hour, while the check
only reads. It goes to ``/dev/shm`` where there is one (creating a million files on a
shared virtual disk takes longer than the whole test suite; once written, reads come
from the kernel's caches either way), else to the temp folder; ``MAILSPOOL_BENCH_DIR``
picks another folder and ``MAILSPOOL_BENCH_SUPPRESSED`` another size.
Run: ``python3 dev.py bench suppression``.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import mailspool
from benchmarks.common import HEADERS, HTML, SUBJECT, best_of
from mailspool.config import Settings
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.feedback import layout
from mailspool.feedback.suppression import Reason, Suppression, SuppressionList
from mailspool.stores.file import FileStore
from mailspool.transports.memory import MemoryTransport

SMALL = 1_000
CHECKS = 20_000
BATCH = 2_000


def address(i: int) -> str:
    return f"follower{i}@example.com"


def populate(root: Path, count: int) -> None:
    """``count`` entries under ``root``, laid out exactly as ``SuppressionList.put`` does."""
    folders: set[Path] = set()
    for i in range(count):
        entry = Suppression(address(i), Reason.BOUNCE, "2026-01-01T00:00:00Z", "550 5.1.1")
        path = root / layout.suppression_key(entry.address)
        if path.parent not in folders:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            folders.add(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, entry.encode())
        finally:
            os.close(fd)


def per_check(store: FileStore, population: int, *, cached: bool) -> float:
    """Seconds per check, half the recipients suppressed and half not."""
    rng = random.Random(7)
    names = [
        address(rng.randrange(population)) if i % 2 else f"someone{i}@example.org"
        for i in range(CHECKS)
    ]
    suppressions = SuppressionList(store, cache_ttl=3600 if cached else 0, listing_ttl=3600)
    if cached:
        for name in names:
            suppressions.is_suppressed(name)

    def run() -> None:
        for name in names:
            suppressions.is_suppressed(name)

    return best_of(3, run) / CHECKS


def per_send(store: FileStore) -> float:
    """Seconds per e-mail for the worker to deliver one batch of BATCH e-mails."""
    settings = Settings.load(store=store.url)
    with mailspool.request(store=store, settings=settings) as scope:
        for i in range(BATCH):
            mailspool.send_mail(f"reader{i}@example.net", SUBJECT, HTML, HEADERS)
    [key] = scope.keys
    worker = Worker(store, MemoryTransport(), options=WorkerOptions(concurrency=8))
    started = time.perf_counter()
    report = worker.deliver(key)
    elapsed = time.perf_counter() - started
    worker.close()
    assert report.sent == BATCH, report
    return elapsed / BATCH


def main() -> dict[str, float]:
    """Print the costs; return them (seconds, and the ratios)."""
    large = int(os.environ.get("MAILSPOOL_BENCH_SUPPRESSED", "1000000"))
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    folder = os.environ.get("MAILSPOOL_BENCH_DIR") or shm
    base = Path(tempfile.mkdtemp(prefix="mailspool-bench-suppression-", dir=folder))
    try:
        started = time.perf_counter()
        populate(base / "large", large)
        populate(base / "small", SMALL)
        elapsed = time.perf_counter() - started
        print(f"wrote {large:,} + {SMALL:,} entries under {base} in {elapsed:.0f} s")
        big, small, empty = (FileStore(base / name) for name in ("large", "small", "empty"))
        return report(big, small, empty, large)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def report(big: FileStore, small: FileStore, empty: FileStore, large: int) -> dict[str, float]:
    cold_big = per_check(big, large, cached=False)
    cold_small = per_check(small, SMALL, cached=False)
    warm = per_check(big, large, cached=True)
    print(f"check, not cached, {large:>9,} entries: {cold_big * 1e6:8.1f} us")
    print(f"check, not cached, {SMALL:>9,} entries: {cold_small * 1e6:8.1f} us")
    print(f"  ratio {large:,} / {SMALL:,}: {cold_big / cold_small:.2f}")
    print(f"check, cached:                         {warm * 1e6:8.2f} us")
    rounds = [(per_send(big), per_send(empty)) for _ in range(3)]  # alternated: same noise
    send_big, send_empty = min(r[0] for r in rounds), min(r[1] for r in rounds)
    print(f"worker send, {large:>9,} suppressed:    {send_big * 1e6:8.1f} us per e-mail")
    print(f"worker send, no list:                  {send_empty * 1e6:8.1f} us per e-mail")
    print(f"  ratio: {send_big / send_empty:.2f}")
    started = time.perf_counter()
    listed = SuppressionList(big).count()
    whole = time.perf_counter() - started
    print(f"listing all {listed:,} keys once (never done by a send): {whole:.1f} s")
    print(f"  = {whole / cold_big:,.0f} checks")
    return {
        "check_large_s": cold_big,
        "check_small_s": cold_small,
        "check_cached_s": warm,
        "send_large_s": send_big,
        "send_no_list_s": send_empty,
        "listing_s": whole,
    }
