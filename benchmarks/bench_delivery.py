"""Delivery (issue "The worker"): 5000 queued ~2 KB e-mails to a local SMTP sink.

Prints, from one run: messages/s for one connection and for the default concurrency;
the ratio to a plain ``smtplib`` loop (one reused connection, each message built with
the stdlib ``EmailMessage``) measured in the same run; the same ratio against a sink
that waits 50 ms on each command (a distant server); where the sender threads' time
goes (from cProfile, per thread); and the delay from a batch being written to its first
e-mail being sent by a running worker. Run: ``python3 dev.py bench delivery``.

Before and after: with ``BENCH_BEFORE_SRC`` naming the ``src`` folder of another
checkout, the run ends with both CLIs side by side (``common.mailspool_drain(src=...)``):
the 5000-e-mail drain to ``smtp-sink`` on loopback (five runs each) and 1000 e-mails to
the same sink 50 ms away (three each), the checkouts taking turns, before first, on one
sink; it prints each checkout's runs and median and the ratio after / before, and
records them (``before_cli_per_s``, ``after_cli_per_s``, ``cli_after_before``, and the
same with ``far_cli``). Every queue is written by this checkout: the batch format is
versioned and unchanged, so an earlier CLI reads it. A "before" checkout::

    git worktree add /tmp/before HEAD~5
    BENCH_BEFORE_SRC=/tmp/before/src python3 dev.py bench delivery
"""

from __future__ import annotations

import base64
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.fixtures.smtp_server import running_smtp_server

import mailspool
from benchmarks.common import (
    HEADERS,
    HTML,
    SUBJECT,
    ProcessRun,
    before_src,
    loop_rate,
    mailspool_drain,
    run_process,
    this_src,
)
from benchmarks.latency import distant
from benchmarks.sinks import debian_binary, fast_sink
from mailspool.config import Settings
from mailspool.delivery.factory import build_worker, open_delivery_transport
from mailspool.delivery.steps import OutcomeCallback
from mailspool.delivery.worker import WorkerOptions
from mailspool.spool.sealed_store import sealed
from mailspool.stores.base import Store
from mailspool.stores.file import FileStore
from mailspool.triggers.local import drain, run_forever

COUNT = 5000
DEFAULT_CONCURRENCY = WorkerOptions().concurrency


def queue_emails(store: Store, count: int) -> None:
    settings = Settings.load(store=store.url)
    with mailspool.request(store=store, settings=settings):
        for i in range(count):
            mailspool.send_mail(
                f"Follower {i} <f{i}@example.com>", SUBJECT, HTML.format(name=i), HEADERS
            )


def profiled_drain(url: str, count: int) -> pstats.Stats:
    """An in-process drain of ``count`` e-mails with the CLI's worker, every sender thread
    under a cProfile of its own (started by the pool's initializer), the stats summed."""
    profilers: list[cProfile.Profile] = []

    def profile_this_thread() -> None:
        profiler = cProfile.Profile()
        profilers.append(profiler)
        profiler.enable()

    with tempfile.TemporaryDirectory() as folder:
        store = FileStore(Path(folder) / "spool")
        queue_emails(store, count)
        settings = Settings.load(store=store.url, transport=url)
        transport = open_delivery_transport(settings)
        senders = ThreadPoolExecutor(settings.concurrency, initializer=profile_this_thread)
        worker = build_worker(settings, store, transport, executor=senders)
        report = drain(worker)
        worker.close()  # ends the sender threads, and so their profiles
        transport.close()
        assert report.sent == count, report
        stats = pstats.Stats(profilers[0])
        for profiler in profilers[1:]:
            stats.add(profiler)
        return stats


def smtp_source_rate(url: str, count: int, sessions: int) -> float | None:
    """Postfix's own load generator at the same concurrency, when it is installed."""
    binary = debian_binary("smtp-source", "postfix")
    if binary is None:
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
    """Share of the send loop's time in MIME, SMTP I/O, the ledger and the rest."""
    functions = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in functions.values())

    def cumulative(file_part: str, name: str) -> float:
        return sum(
            ct for (f, _, n), (_, _, _, ct, _) in functions.items() if file_part in f and n == name
        )

    parts = {
        "MIME (render)": cumulative("mailspool/mime.py", "render"),
        "SMTP I/O (send)": cumulative("transports/smtp.py", "_deliver"),
        "ledger (record)": cumulative("mailspool/spool/ledger.py", "record"),
        "decode e-mail": cumulative("mailspool/delivery/guards.py", "read"),
        "rate limit": cumulative("mailspool/delivery/ratelimit.py", "acquire"),
    }
    busy = cumulative("mailspool/delivery/attempt.py", "attempt") or total
    parts["other"] = max(busy - sum(parts.values()), 0.0)
    return {name: value / busy for name, value in parts.items()}


def print_cli_rates() -> dict[str, float]:
    """The CLI's defaults (pool = concurrency) and the former fixed pool of 10, side by side."""
    with running_smtp_server() as slow:
        slow.slow_down(0.05)
        pooled, _ = cli_rate(slow.url, 500)
        capped, _ = cli_rate(f"{slow.url}?max_connections=10", 500)
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
        steps = [OutcomeCallback(lambda *_: sent.set())]
        worker = build_worker(settings, store, transport, steps=steps)
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


def cli_rate(
    url: str, count: int, *extra: str, encryption_key: str = "", src: str | None = None
) -> tuple[float, ProcessRun]:
    """``mailspool worker --drain`` with the CLI's defaults, whole process, on ``count``
    queued e-mails; checks that every one was sent. ``encryption_key``: the batches are
    written sealed with it and the worker runs with it (``MAILSPOOL_ENCRYPTION_KEY``).
    ``src``: another checkout's CLI drains instead; the batches are still written by this
    checkout (the batch format is versioned and unchanged, so an earlier CLI reads them)."""
    keys = (encryption_key,) if encryption_key else ()
    with tempfile.TemporaryDirectory() as folder:
        store = FileStore(Path(folder) / "spool")
        queue_emails(sealed(store, keys), count)
        env = {"MAILSPOOL_ENCRYPTION_KEY": encryption_key} if encryption_key else {}
        run = mailspool_drain(store.url, url, *extra, settings=env, src=src)
    assert f" {count} sent" in run.output, run.output
    return count / run.seconds, run


def alternate(url: str, count: int, before: str, rounds: int) -> dict[str, list[float]]:
    """The rates of ``rounds`` drains by each checkout on the same server, taking turns
    (before, after, before, after...) so a change in the machine's load falls on both."""
    rates: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(rounds):
        rates["before"].append(cli_rate(url, count, src=before)[0])
        rates["after"].append(cli_rate(url, count)[0])
    return rates


def against_before(
    results: dict[str, float],
    before: str,
    near: tuple[int, int] = (COUNT, 5),
    far: tuple[int, int] = (1000, 3),
) -> None:
    """The loopback drain and the 50 ms one by ``before``'s CLI and this checkout's, side
    by side (``near``, ``far``: e-mails, runs each): each checkout's runs, medians, and
    the ratio after / before."""
    with fast_sink() as (url, sink):
        near_rates = alternate(url, near[0], before, near[1])
        with distant(url, 0.05) as (far_url, _):
            far_rates = alternate(far_url, far[0], before, far[1])
    print(f"side by side, alternating runs: before = the CLI of {before} (BENCH_BEFORE_SRC),")
    print(f"  after = the CLI of {this_src()}:")
    for key, label, rates in (
        ("cli", f"{near[0]} e-mails to {sink} on 127.0.0.1", near_rates),
        ("far_cli", f"{far[0]} e-mails, the same sink 50 ms away", far_rates),
    ):
        median = {side: statistics.median(runs) for side, runs in rates.items()}
        results |= {
            f"before_{key}_per_s": median["before"],
            f"after_{key}_per_s": median["after"],
            f"{key}_after_before": median["after"] / median["before"],
        }
        print(f"  {label}:")
        for side, runs in rates.items():
            spread = ", ".join(f"{rate:.0f}" for rate in runs)
            print(f"    {side + ':':<8}{median[side]:7.0f} msg/s median (runs {spread})")
        print(f"    after / before: {median['after'] / median['before']:.2f}x (target >= 1)")
    print(f"  load average {os.getloadavg()[0]:.1f} (2 cores)")


def encryption_cost(results: dict[str, float], rounds: int = 5) -> None:
    """The CLI drain with encryption at rest on and off, alternating, medians compared:
    the rate, and the CPU time per e-mail (which other load on the machine moves less)."""
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    runs: dict[bool, list[tuple[float, ProcessRun]]] = {False: [], True: []}
    with fast_sink() as (url, sink):
        for _ in range(rounds):
            runs[False].append(cli_rate(url, COUNT))
            runs[True].append(cli_rate(url, COUNT, encryption_key=key))
    rate = {on: statistics.median(r for r, _ in runs[on]) for on in runs}
    cpu = {
        on: statistics.median((p.user + p.system) / COUNT * 1e6 for _, p in runs[on]) for on in runs
    }
    results |= {"cli_clear_per_s": rate[False], "cli_encrypted_per_s": rate[True]}
    print(f"encryption at rest, {COUNT} e-mails to {sink}, {rounds} alternating runs each:")
    for on, label in ((False, "files in clear:"), (True, "sealed (MAILSPOOL_ENCRYPTION_KEY):")):
        spread = ", ".join(f"{r:.0f}" for r, _ in runs[on])
        print(
            f"  {label:<36}{rate[on]:6.0f} msg/s, {cpu[on]:4.0f} us CPU per e-mail (runs {spread})"
        )
    print(
        f"  sealed / clear: {rate[True] / rate[False]:.2f}x the rate, "
        f"{cpu[False] / cpu[True]:.2f}x by CPU per e-mail (target >= 0.9); "
        f"load average {os.getloadavg()[0]:.1f} (2 cores)"
    )


def syscalls_per_email(url: str, count: int) -> dict[str, float] | None:
    """System calls of a CLI drain per e-mail (strace -f -c), less those of an empty drain."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    totals = []
    for emails in (0, count):
        with tempfile.TemporaryDirectory() as folder:
            store = FileStore(Path(folder) / "spool")
            store.check()
            if emails:
                queue_emails(store, emails)
            summary = Path(folder) / "strace.txt"
            env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSPOOL_")}
            run_process(
                [strace, "-f", "-c", "-o", str(summary), sys.executable, "-m", "mailspool",
                 "worker", "--drain", "--no-progress", "--store", store.url, "--transport", url],
                env,
            )  # fmt: skip
            totals.append(_strace_calls(summary.read_text()))
    empty, full = totals
    return {name: (calls - empty.get(name, 0)) / count for name, calls in full.items()}


def _strace_calls(summary: str) -> dict[str, int]:
    calls: dict[str, int] = {}
    for line in summary.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3])
    return calls


def throughput(results: dict[str, float]) -> None:
    with fast_sink() as (url, sink):
        print(f"delivery of {COUNT} queued ~2 KB e-mails to {sink} on 127.0.0.1")
        loop = loop_rate(url, COUNT)
        rate, run = cli_rate(url, COUNT)
        source = smtp_source_rate(url, COUNT, DEFAULT_CONCURRENCY)
        results |= {"smtplib_loop_per_s": loop, "cli_per_s": rate}
        print(f"  plain smtplib loop, 1 connection, EmailMessage per message: {loop:8.0f} msg/s")
        print(
            f"  mailspool worker --drain (CLI defaults, whole process):      {rate:8.0f} msg/s "
            f"({rate / loop:.2f}x the loop; target >= 3x)"
        )
        print(
            f"    {run.seconds:.2f} s wall, CPU {run.user:.2f} s user + {run.system:.2f} s system "
            f"= {(run.user + run.system) / COUNT * 1e6:.0f} us per e-mail"
        )
        if source is not None:
            results["smtp_source_per_s"] = source
            print(
                f"  postfix smtp-source, {DEFAULT_CONCURRENCY} sessions, 2 KB messages:           "
                f"{source:8.0f} msg/s (mailspool reaches {rate / source:.2f}x of it; aim >= 0.25)"
            )
        calls = syscalls_per_email(url, 2000)
        if calls:
            top = sorted(calls.items(), key=lambda item: -item[1])[:8]
            listed = ", ".join(f"{name} {per:.1f}" for name, per in top if per >= 0.05)
            print(f"  system calls per e-mail (strace -f, 2000 e-mails): {sum(calls.values()):.1f}")
            print(f"    {listed}")


def loop_profile() -> None:
    with fast_sink() as (url, _):
        stats = profiled_drain(url, 2000)
    print("  where the send loop's time goes (in-process drain of 2000 under cProfile):")
    for name, share in breakdown(stats).items():
        print(f"    {name:<18} {share:6.1%}")


def far_server(results: dict[str, float], count: int = 1000) -> None:
    with fast_sink() as (url, sink), distant(url, 0.05) as (far, turns):
        print(f"against {sink} 50 ms away (each command answered 50 ms after it is sent):")
        loop = loop_rate(far, 20)
        turns.count = 0
        rate, _ = cli_rate(far, count)
        round_trips = turns.count / count
        turns.count = 0
        plain, _ = cli_rate(f"{far}?pipelining=false", count // 4)
        plain_trips = turns.count / (count // 4)
    results |= {"far_loop_per_s": loop, "far_cli_per_s": rate, "far_round_trips": round_trips}
    print(f"  plain smtplib loop (20 messages):             {loop:7.1f} msg/s")
    print(
        f"  mailspool worker --drain ({count}, CLI defaults): {rate:7.1f} msg/s "
        f"({rate / loop:.1f}x; target >= 30x); {round_trips:.2f} round trips per e-mail "
        "with PIPELINING (aim 2)"
    )
    print(
        f"  the same with ?pipelining=false ({count // 4}):       {plain:7.1f} msg/s "
        f"({plain / loop:.1f}x); {plain_trips:.2f} round trips per e-mail"
    )


def main() -> dict[str, float]:
    before = before_src()  # a wrong folder stops the run here, not after minutes of it
    results: dict[str, float] = {}
    throughput(results)
    encryption_cost(results)
    loop_profile()
    far_server(results)
    results |= print_cli_rates()
    if before:
        against_before(results, before)
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
