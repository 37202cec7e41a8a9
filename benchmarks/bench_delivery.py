"""Delivery (issue "The worker"): 5000 queued ~2 KB e-mails to a local SMTP sink.

Prints, from one run: messages/s for one connection and for the default concurrency;
the ratio to a plain ``smtplib`` loop (one reused connection, each message built with
the stdlib ``EmailMessage``) measured in the same run; the same ratio against a sink
that waits 50 ms on each command (a distant server); where the sender threads' time
goes (from cProfile, per thread); and the delay from a batch being written to its first
e-mail being sent by a running worker. Run: ``python3 dev.py bench delivery``.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

from tests.fixtures.smtp_server import running_smtp_server

import mailspool
from benchmarks.common import HEADERS, HTML, SUBJECT
from benchmarks.sinks import fast_sink
from mailspool.config import Settings
from mailspool.delivery.factory import build_worker, open_delivery_transport
from mailspool.delivery.worker import WorkerOptions
from mailspool.stores.file import FileStore
from mailspool.triggers.local import drain, run_forever

COUNT = 5000
DEFAULT_CONCURRENCY = WorkerOptions().concurrency


def queue_emails(store: FileStore, count: int) -> None:
    settings = Settings.load(store=store.url)
    with mailspool.request(store=store, settings=settings):
        for i in range(count):
            mailspool.send_mail(
                f"Follower {i} <f{i}@example.com>", SUBJECT, HTML.format(name=i), HEADERS
            )


def worker_rate(
    url: str, count: int, concurrency: int, profile: bool = False
) -> tuple[float, pstats.Stats | None]:
    with tempfile.TemporaryDirectory() as folder:
        store = FileStore(Path(folder) / "spool")
        queue_emails(store, count)
        settings = Settings.load(store=store.url, transport=url, concurrency=concurrency)
        transport = open_delivery_transport(settings)  # the CLI's worker: pool = concurrency
        profiles: list[cProfile.Profile] = []
        executor = None
        if profile:
            executor = ThreadPoolExecutor(
                concurrency, initializer=_start_profile, initargs=(profiles,)
            )
        worker = build_worker(settings, store, transport, executor=executor)
        started = time.perf_counter()
        report = drain(worker)
        seconds = time.perf_counter() - started
        worker.close()
        transport.close()
        assert report.sent == count, report
        stats = None
        if profiles:
            for item in profiles:
                item.disable()
            stats = pstats.Stats(*profiles)
        return count / seconds, stats


_profile_lock = threading.Lock()


def _start_profile(profiles: list[cProfile.Profile]) -> None:
    profiler = cProfile.Profile()
    with _profile_lock:
        profiles.append(profiler)
    profiler.enable()


def smtplib_rate(url: str, count: int) -> float:
    host, port = url.removeprefix("smtp://").split(":")
    started = time.perf_counter()
    with smtplib.SMTP(host, int(port)) as connection:
        for i in range(count):
            message = EmailMessage()
            message["From"] = HEADERS["From"]
            message["To"] = f"Follower {i} <f{i}@example.com>"
            message["Reply-To"] = HEADERS["Reply-To"]
            message["Subject"] = SUBJECT
            message.set_content(HTML.format(name=i), subtype="html")
            connection.send_message(message)
    return count / (time.perf_counter() - started)


def smtp_source_rate(url: str, count: int, sessions: int) -> float | None:
    """Postfix's own load generator at the same concurrency, when it is installed."""
    binary = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not os.path.exists(binary):
        return None
    target = url.removeprefix("smtp://")
    started = time.perf_counter()
    subprocess.run(
        [binary, "-s", str(sessions), "-m", str(count), "-l", "2048", "-f", "blog@example.com",
         "-t", "f@example.com", target],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return count / (time.perf_counter() - started)


def breakdown(stats: pstats.Stats) -> dict[str, float]:
    """Share of the sender threads' time in MIME, SMTP I/O, the ledger and the rest."""
    functions = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in functions.values())

    def cumulative(file_part: str, name: str) -> float:
        return sum(
            ct for (f, _, n), (_, _, _, ct, _) in functions.items() if file_part in f and n == name
        )

    parts = {
        "MIME (render)": cumulative("mailspool/mime.py", "render"),
        "SMTP I/O (send)": cumulative("smtplib.py", "sendmail"),
        "ledger (record)": cumulative("mailspool/spool/ledger.py", "record"),
        "decode e-mail": cumulative("mailspool/spool/batch.py", "message"),
        "rate limit": cumulative("mailspool/delivery/ratelimit.py", "acquire"),
    }
    busy = cumulative("mailspool/delivery/attempt.py", "attempt") or total
    parts["other"] = max(busy - sum(parts.values()), 0.0)
    return {name: value / busy for name, value in parts.items()}


def cli_drain_rate(url: str, count: int) -> float:
    """``mailspool worker --drain`` with its defaults, the whole process, in messages/s."""
    with tempfile.TemporaryDirectory() as folder:
        store = FileStore(Path(folder) / "spool")
        queue_emails(store, count)
        env = {**os.environ, "MAILSPOOL_STORE": store.url, "MAILSPOOL_TRANSPORT": url}
        command = [sys.executable, "-m", "mailspool", "worker", "--drain", "--no-progress"]
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        assert len(list((Path(folder) / "spool" / "done").glob("*.json"))) == 1
        return count / seconds


def print_cli_rates() -> dict[str, float]:
    """The CLI's defaults (pool = concurrency) and the former fixed pool of 10, side by side."""
    with running_smtp_server() as slow:
        slow.slow_down(0.05)
        pooled = cli_drain_rate(slow.url, 500)
        capped = cli_drain_rate(f"{slow.url}?max_connections=10", 500)
    print("`mailspool worker --drain` (defaults, whole process), 500 messages, 50 ms a command:")
    print(f"  SMTP pool of 10 connections (the former default): {capped:6.1f} msg/s")
    print(
        f"  pool following MAILSPOOL_CONCURRENCY ({DEFAULT_CONCURRENCY}):        "
        f"{pooled:6.1f} msg/s ({pooled / capped:.1f}x)"
    )
    return {"cli_pool_10_per_s": capped, "cli_default_per_s": pooled}


def first_send_delay(trials: int = 20) -> list[float]:
    delays = []
    with running_smtp_server() as server, tempfile.TemporaryDirectory() as folder:
        store = FileStore(Path(folder) / "spool")
        settings = Settings.load(store=store.url, transport=server.url)
        transport = open_delivery_transport(settings)
        sent = threading.Event()
        worker = build_worker(settings, store, transport, on_outcome=lambda *_: sent.set())
        thread = threading.Thread(
            target=run_forever, args=(worker,), kwargs={"poll_interval": 0.05}
        )
        thread.start()
        try:
            time.sleep(0.2)
            for trial in range(trials):
                sent.clear()
                queue_emails(store, 1)
                written = time.perf_counter()
                assert sent.wait(10)
                delays.append(time.perf_counter() - written)
                time.sleep(0.013 * (trial % 5))  # land at different points of the poll cycle
        finally:
            worker.stop()
            thread.join()
            worker.close()
            transport.close()
    return delays


def main() -> dict[str, float]:
    results: dict[str, float] = {}
    with fast_sink() as (url, sink):
        print(f"delivery of {COUNT} queued ~2 KB e-mails to {sink} on 127.0.0.1")
        loop = smtplib_rate(url, COUNT)
        one, _ = worker_rate(url, COUNT, 1)
        default, _ = worker_rate(url, COUNT, DEFAULT_CONCURRENCY)
        _, stats = worker_rate(url, 2000, DEFAULT_CONCURRENCY, profile=True)
        results |= {
            "smtplib_loop_per_s": loop,
            "worker_1_per_s": one,
            "worker_default_per_s": default,
        }
        print(f"  plain smtplib loop, 1 connection, EmailMessage per message: {loop:8.0f} msg/s")
        print(
            f"  mailspool worker, 1 connection:                              {one:8.0f} msg/s ({one / loop:.2f}x)"
        )
        print(
            f"  mailspool worker, {DEFAULT_CONCURRENCY} connections (default):                 "
            f"{default:8.0f} msg/s ({default / loop:.2f}x the loop; target >= 2x)"
        )
        source = (
            smtp_source_rate(url, COUNT, DEFAULT_CONCURRENCY)
            if sink.startswith("postfix")
            else None
        )
        if source is not None:
            results["smtp_source_per_s"] = source
            print(
                f"  postfix smtp-source, {DEFAULT_CONCURRENCY} sessions, 2 KB messages:           "
                f"{source:8.0f} msg/s (mailspool reaches {default / source:.2f}x of it)"
            )
    if stats is not None:
        print("  where the sender threads' time goes (a separate run of 2000 under cProfile):")
        for name, share in breakdown(stats).items():
            print(f"    {name:<18} {share:6.1%}")
    with running_smtp_server() as slow:
        slow.slow_down(0.05)
        slow_loop = smtplib_rate(slow.url, 20)
        slow_worker, _ = worker_rate(slow.url, 500, DEFAULT_CONCURRENCY)
        ratio = slow_worker / slow_loop
        results |= {"slow_loop_per_s": slow_loop, "slow_worker_per_s": slow_worker}
        print("against a sink that waits 50 ms on each command (a distant server):")
        print(f"  plain smtplib loop (20 messages): {slow_loop:6.1f} msg/s")
        print(
            f"  mailspool worker (500 messages):  {slow_worker:6.1f} msg/s ({ratio:.1f}x; target >= 20x)"
        )
    results |= print_cli_rates()
    delays = first_send_delay()
    results["first_send_median_ms"] = statistics.median(delays) * 1000
    print(
        f"write-to-first-send delay of a running worker (poll 50 ms, {len(delays)} batches): "
        f"median {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
        "(target < 100 ms)"
    )
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
