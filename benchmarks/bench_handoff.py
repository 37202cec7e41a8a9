"""The request path (issue "The producer"): handing off 20, 500 and 5000 deferred e-mails.

Prints, from one run on this machine: the per-e-mail hand-off cost, the store writes per
request, and the ratio of the 5000-e-mail request to a floor measured beside it (parse
each address with ``email.utils.parseaddr``, serialise the same e-mails once with the
stdlib ``json``, one fsync'd write of that file); and the cost of the trace context
(the ``[otel]`` extra installed and imported, no SDK configured) against the same hand-off with
``opentelemetry`` not importable (blocked in a child process of the benchmark), each
variant in its own child, alternated, timed in CPU time. Run: ``python3 dev.py bench handoff``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from email.utils import parseaddr
from pathlib import Path

import mailspool
from benchmarks.common import HEADERS, HTML, SUBJECT, best_of
from mailspool.config import Settings
from mailspool.stores.file import FileStore

SIZES = (20, 500, 5000)


class CountingStore(FileStore):
    """A file store that counts its writes."""

    writes = 0

    def put(self, key: str, data: bytes) -> None:
        CountingStore.writes += 1
        super().put(key, data)


def recipients(count: int) -> list[str]:
    return [f"Follower {i} <follower{i}@example.com>" for i in range(count)]


def hand_off(store: FileStore, settings: Settings, addresses: list[str], bodies: list[str]) -> None:
    with mailspool.request(store=store, settings=settings):
        for address, body in zip(addresses, bodies, strict=True):
            mailspool.send_mail(address, SUBJECT, body, HEADERS)


def floor(folder: Path, addresses: list[str], bodies: list[str]) -> None:
    for address in addresses:
        parseaddr(address)
    emails = [
        {"to": [a], "subject": SUBJECT, "message": b, "attachments": []}
        for a, b in zip(addresses, bodies, strict=True)
    ]
    data = json.dumps({"meta": {"from": HEADERS["From"]}, "emails": emails}).encode()
    path = folder / "floor.json"
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    path.unlink()


def main() -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = CountingStore(root / "spool")
        settings = Settings.load(store=store.url)
        print("hand-off of deferred e-mails in one request scope (file store, ~2 KB HTML each)")
        print(f"{'e-mails':>8} {'request ms':>11} {'us/e-mail':>10} {'writes':>7}")
        for size in SIZES:
            addresses = recipients(size)
            bodies = [HTML.format(name=f"Follower {i}") for i in range(size)]
            runs = 30 if size < 1000 else 7
            CountingStore.writes = 0
            seconds = best_of(runs, lambda a=addresses, b=bodies: hand_off(store, settings, a, b))
            writes = CountingStore.writes / runs
            results[f"handoff_{size}_s"] = seconds
            results[f"writes_{size}"] = writes
            print(f"{size:>8} {seconds * 1000:>11.2f} {seconds / size * 1e6:>10.1f} {writes:>7.0f}")
            for key in list(store.keys("queue/")):
                store.delete(key)
        size = SIZES[-1]
        addresses = recipients(size)
        bodies = [HTML.format(name=f"Follower {i}") for i in range(size)]
        floor_seconds = best_of(7, lambda: floor(root, addresses, bodies))
        results["floor_s"] = floor_seconds
        ratio = results[f"handoff_{size}_s"] / floor_seconds
        results["ratio_to_floor"] = ratio
        per_email = results[f"handoff_{size}_s"] / size * 1e6
        print(
            f"floor for {size}: {floor_seconds * 1000:.2f} ms ({floor_seconds / size * 1e6:.1f} us/e-mail)"
        )
        print(f"ratio of the {size}-e-mail request to the floor: {ratio:.2f} (target <= 3)")
        print(f"per-e-mail cost: {per_email:.1f} us (ambition <= 20 us)")
        twenty = results[f"handoff_{SIZES[0]}_s"]
        print(
            f"the {size}-e-mail request costs {results[f'handoff_{size}_s'] / twenty:.0f}x the "
            f"{SIZES[0]}-e-mail one, for {size // SIZES[0]}x the e-mails"
        )
    results.update(tracing_cost())
    return results


ROOT = Path(__file__).resolve().parent.parent
#: The child's code: block the import (or not), then time one hand-off size.
_CHILD = """
import sys
if sys.argv[2] == "blocked":
    sys.modules["opentelemetry"] = None  # import opentelemetry -> ImportError
else:  # as an instrumented application has it: imported, no tracer provider set
    import opentelemetry.trace
sys.path.insert(0, sys.argv[3])
from benchmarks.bench_handoff import time_handoff
print(time_handoff(int(sys.argv[1])))
"""
OTEL_VARIANTS = {"installed": "[otel] imported, no SDK", "blocked": "not importable"}


def time_handoff(size: int) -> float:
    """The least CPU time of a ``size``-e-mail hand-off in this process, in seconds: the
    trace context costs CPU only, and CPU time is what a loaded machine disturbs least
    (the fsync's wait, the same in both variants, is left out)."""
    import mailspool.tracing

    mailspool.tracing.current_traceparent()  # the variant is settled before timing
    with tempfile.TemporaryDirectory() as folder:
        store = FileStore(Path(folder) / "spool")
        settings = Settings.load(store=store.url)
        addresses = recipients(size)
        bodies = [HTML.format(name=f"Follower {i}") for i in range(size)]
        timings = []
        for _ in range(30 if size < 1000 else 7):
            started = time.process_time()
            hand_off(store, settings, addresses, bodies)
            timings.append(time.process_time() - started)
        return min(timings)


def _child(size: int, variant: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(size), variant, str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def tracing_cost(rounds: int = 9) -> dict[str, float]:
    """Each size in both variants, alternated ``rounds`` times; the best of each."""
    results: dict[str, float] = {}
    print("trace context (OpenTelemetry) cost: CPU time, best of alternated child processes")
    print(f"{'e-mails':>8} {'installed us/e':>15} {'not importable us/e':>20} {'ratio':>6}")
    for size in SIZES:
        best = dict.fromkeys(OTEL_VARIANTS, float("inf"))
        for _ in range(rounds):  # alternated: a noisy moment hits both variants
            for variant in OTEL_VARIANTS:
                best[variant] = min(best[variant], _child(size, variant))
        ratio = best["installed"] / best["blocked"]
        results[f"otel_ratio_{size}"] = ratio
        print(
            f"{size:>8} {best['installed'] / size * 1e6:>15.1f}"
            f" {best['blocked'] / size * 1e6:>20.1f} {ratio:>6.3f}"
        )
    print("target: installed <= 1.10x not importable")
    check = _check_cost()
    results["otel_check_us"] = check
    per_email = best["blocked"] / SIZES[-1] * 1e6
    print(
        f"the check each queued e-mail pays with the extra (this process, no SDK): "
        f"{check:.2f} us, {check / per_email:.1%} of the {SIZES[-1]}-e-mail hand-off's "
        f"{per_email:.1f} us"
    )
    return results


def _check_cost(count: int = 200_000) -> float:
    """The CPU microseconds of the trace-context check one queued e-mail goes through
    (``tracing.stamped``, as the request scope calls it), best of 5."""
    import opentelemetry.trace  # noqa: F401  imported, as an instrumented application has it

    from mailspool.message import Message
    from mailspool.tracing import stamped

    message = (Message(to=("a@example.com",), subject="s", text="t"),)
    timings = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(count):
            stamped(message)
        timings.append(time.process_time() - started)
    return min(timings) / count * 1e6


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
