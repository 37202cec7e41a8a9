"""Field speed (issue "one post to 300 followers through a TLS relay 50 ms away, and a
real Postfix"): ``python3 dev.py bench field``.

Every case runs ``mailspool worker --drain`` with the CLI's defaults as a whole process
(``common.mailspool_drain``: start-up, the delivery processes, closing included) on one
queued batch, beside what it is compared with, in the same run:

- a real Postfix (Debian's, ``tests/fixtures/postfix.py``: a config directory of its own,
  127.0.0.1, self-signed STARTTLS, discard transport, queue on tmpfs, Postfix's own
  flow control: smtpd slows down a client that sends faster than Postfix delivers; warmed
  up by one untimed drain, as a relay in service is: ``warm_up``), behind
  ``benchmarks/latency.py``'s proxy that holds what the client sends for 50 ms (a round
  trip of 50 ms: 25 ms each way), against a plain ``smtplib`` loop (``common.loop_rate``,
  the one every benchmark uses: one reused connection, ``starttls()``, each e-mail made
  and sent in turn) timed on its first e-mails;
- aiosmtpd without PIPELINING waiting 50 ms on each command, against the same loop;
- Postfix on loopback with STARTTLS, against Postfix's own ``smtp-source`` (32 sessions,
  connections reused, a recipient per e-mail as ours: ``-d -N``; it has no TLS, so its
  figure is a ceiling our TLS sends do not pay for);
- Postfix's ``smtp-sink`` on loopback without TLS, against the loop (and against another
  checkout when ``BENCH_BEFORE_SRC`` names its ``src`` folder).

With ``BENCH_BEFORE_SRC=/path/to/other/src`` every case also runs that checkout's
CLI, side by side. Prints the ratios and writes ``docs/img/field.png``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.postfix import ensure_postfix, running_postfix, smtp_source
from tests.fixtures.smtp_server import running_smtp_server

from benchmarks.bench_delivery import queue_emails
from benchmarks.common import ProcessRun, before_src, loop_rate, mailspool_drain
from benchmarks.latency import Turns, distant
from benchmarks.sinks import fast_sink
from mailspool.stores.file import FileStore

RTT = 0.05
SESSIONS = 32
BEFORE = before_src()
ROOT = Path(__file__).resolve().parent.parent


@dataclass(slots=True)
class Case:
    name: str
    ours: float  # msg/s
    other: float  # msg/s of what it is compared with
    against: str
    target: float
    before: float | None = None
    trips: float | None = None

    @property
    def ratio(self) -> float:
        return self.ours / self.other


def drain_rate(url: str, count: int, src: str | None = None) -> tuple[float, ProcessRun]:
    """``mailspool worker --drain`` (defaults) on one batch of ``count``; ``src``: run the
    CLI of another checkout."""
    with tempfile.TemporaryDirectory() as folder:
        store = FileStore(Path(folder) / "spool")
        queue_emails(store, count)
        run = mailspool_drain(store.url, url, src=src)
    assert f" {count} sent" in run.output, run.output
    return count / run.seconds, run


def warm_up(url: str) -> None:
    """One untimed drain of ``SESSIONS`` e-mails: a relay in service has its smtpd
    processes running, while a Postfix just started forks one per new connection (with
    its TLS set-up); every contender is then timed against the same warm server."""
    drain_rate(url, SESSIONS)


def compare(url: str, count: int, turns: Turns | None = None) -> tuple[float, float | None, float]:
    """Our rate, the ``BEFORE`` checkout's (or None), our round trips per e-mail."""
    before = drain_rate(url, count, BEFORE)[0] if BEFORE else None
    if turns is not None:
        turns.count = 0
    ours, _ = drain_rate(url, count)
    trips = turns.count / count if turns is not None else 0.0
    return ours, before, trips


@contextmanager
def postfix_far(tls: bool) -> Iterator[tuple[str, str, Turns]]:
    with (
        running_postfix(tls=tls, flow_control=True) as postfix,
        distant(postfix.url, RTT) as (far, turns),
    ):
        yield far, postfix.cafile, turns


def case_distant_tls(count: int, target: float, loop_count: int = 25) -> Case:
    with postfix_far(tls=True) as (far, cafile, turns):
        url = f"{far}?cafile={cafile}"
        warm_up(url)
        loop = loop_rate(far, loop_count, cafile)
        ours, before, trips = compare(url, count, turns)
    return Case(
        f"{count} e-mails, Postfix STARTTLS, {RTT * 1000:.0f} ms RTT",
        ours,
        loop,
        f"smtplib loop + starttls ({loop_count} e-mails)",
        target,
        before,
        trips,
    )


def case_slow_no_pipelining(count: int = 300, loop_count: int = 15) -> Case:
    with running_smtp_server(pipelining=False) as server:
        server.slow_down(RTT)
        loop = loop_rate(server.url, loop_count)
        ours, before, _ = compare(server.url, count)
    return Case(
        f"{count} e-mails, aiosmtpd without PIPELINING, {RTT * 1000:.0f} ms a command",
        ours,
        loop,
        f"smtplib loop ({loop_count} e-mails)",
        25,
        before,
    )


def case_postfix_loopback(count: int = 5000) -> Case:
    with running_postfix(tls=True, flow_control=True) as postfix:
        url = f"{postfix.url}?cafile={postfix.cafile}"
        warm_up(url)
        ours, before, _ = compare(url, count)
        source = count / smtp_source(postfix.host, postfix.port, count, SESSIONS, 2048)
    return Case(
        f"{count} e-mails, Postfix STARTTLS on loopback",
        ours,
        source,
        f"smtp-source -d -N, {SESSIONS} sessions, no TLS",
        0.8,
        before,
    )


def case_sink_loopback(count: int = 5000) -> Case:
    """The ``delivery`` benchmark's case: it must be no slower than before this work, so
    with ``BENCH_BEFORE_SRC`` the comparison is that checkout's CLI, run alternately three
    times each (medians: a loopback drain moves with the machine's load)."""
    with fast_sink() as (url, sink):
        if not BEFORE:
            loop = loop_rate(url, 1000)
            ours, _, _ = compare(url, count)
            return Case(f"{count} e-mails, {sink} on loopback, no TLS", ours, loop,
                        "smtplib loop (1000 e-mails)", 3)  # fmt: skip
        befores, ours_runs = [], []
        for _ in range(3):
            befores.append(drain_rate(url, count, BEFORE)[0])
            ours_runs.append(drain_rate(url, count)[0])
    before = statistics.median(befores)
    return Case(
        f"{count} e-mails, {sink} on loopback, no TLS",
        statistics.median(ours_runs),
        before,
        "the CLI before this work (BENCH_BEFORE_SRC), medians of 3 alternate runs",
        1.0,
        before,
    )


def report(cases: list[Case]) -> None:
    print(f"{'case':<58} {'ours msg/s':>10} {'vs':>9} {'ratio':>7} {'target':>7}", end="")
    print("  before msg/s" if BEFORE else "")
    for case in cases:
        line = (
            f"{case.name:<58} {case.ours:10.1f} {case.other:9.1f} {_times(case.ratio)} "
            f"{_times(case.target)}"
        )
        if BEFORE:
            line += f"  {case.before:10.1f}" if case.before else "           -"
        print(line)
        extra = f"  ({case.against}"
        if case.trips:
            extra += f"; {case.trips:.2f} round trips per e-mail through the proxy"
        print(extra + ")")


def _times(ratio: float) -> str:
    """A ratio to one decimal, or two below 1 (0.56x, not 0.6x)."""
    return f"{ratio:6.2f}x" if ratio < 1 else f"{ratio:6.1f}x"


def plot(cases: list[Case], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        print(f"no plot ({err})")
        return
    figure, axis = plt.subplots(figsize=(9, 4.5))
    names = [case.name.replace(", ", "\n", 1) for case in cases]
    ratios = [case.ratio / case.target for case in cases]
    bars = axis.barh(names, ratios, color="#4C72B0")
    axis.axvline(1.0, color="#C44E52", linestyle="--", label="target")
    for bar, case in zip(bars, cases, strict=True):
        axis.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {case.ratio:.2f}x (target {case.target:g}x)",
            va="center",
            fontsize=8,
        )
    axis.set_xlabel("ratio / target (each measured side by side in one run)")
    axis.set_title("mailspool worker --drain (CLI defaults) in the field")
    axis.invert_yaxis()
    axis.legend(loc="lower right")
    axis.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"plot: {path.relative_to(ROOT)}")


def main() -> list[Case]:
    if not ensure_postfix():
        print("Postfix is not installed and cannot be (root and apt-get needed): skipped")
        return []
    cases = [
        case_distant_tls(300, 40),
        case_distant_tls(1000, 75),
        case_slow_no_pipelining(),
        case_postfix_loopback(),
        case_sink_loopback(),
    ]
    report(cases)
    plot(cases, ROOT / "docs" / "img" / "field.png")
    return cases


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
