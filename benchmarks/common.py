"""Helpers shared by the benchmarks: timing and the e-mail they send."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

#: About 2 KB of HTML, the size the benchmarks are specified with.
HTML = (
    "<html><body><h1>A new post</h1><p>Hello {name},</p><p>"
    + "Ana just published a new post on sending e-mail asynchronously. " * 28
    + "</p><p>You follow Ana.</p></body></html>"
)
SUBJECT = "New post: sending e-mail asynchronously"
HEADERS = {"From": "Blog <blog@example.com>", "Reply-To": "Ana <ana@example.com>"}


def best_of(runs: int, action: Callable[[], object]) -> float:
    """The fastest of ``runs`` timings, in seconds (the least disturbed by a noisy machine)."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def median_of(runs: int, action: Callable[[], object]) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)
