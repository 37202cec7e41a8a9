"""Peers, side by side (``python3 dev.py bench peers``): the same 5000 ~2 KB e-mails,
queued and then delivered to the same Postfix ``smtp-sink`` by

- django-post-office (``mail.send``, then ``manage.py send_queued_mail``),
- django-mailer (``send_html_mail``, then ``manage.py send_mail``),
- Celery with django-celery-email (``send_mail`` queues a task in Redis; a Celery worker
  sends it; Debian's ``redis-server``, started here),
- mailspool (``send_mail`` in a request scope, then ``mailspool worker --drain``).

Each peer runs with its defaults, in a virtualenv of its own (``.venv-peers``, made from
``benchmarks/peers-requirements.txt``), on SQLite in the same temporary folder as
mailspool's file store; the peers queue inside one transaction, as a request with
``ATOMIC_REQUESTS`` would. Delivery is timed for the whole process, start-up included,
and counted at the sink. Every contender runs ``ROUNDS`` times, taking turns (each round
runs them all), so a change in the machine's load falls on all of them; the figures
are each one's medians. Prints the runs and the ratios and draws ``docs/img/peers.png``.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import tempfile
import time
import venv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mailspool
from benchmarks.common import HEADERS, HTML, SUBJECT, mailspool_drain, run_process
from benchmarks.sinks import counting_sink, debian_binary, free_port
from mailspool.config import Settings
from mailspool.stores.file import FileStore

COUNT = 5000
#: Runs of each contender; its medians are its figures (a single run moves by 5-10%).
ROUNDS = 3
ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / ".venv-peers"
REQUIREMENTS = Path(__file__).with_name("peers-requirements.txt")
DRIVER = Path(__file__).with_name("peers_driver.py")
PLOT = ROOT / "docs" / "img" / "peers.png"
PEERS = {
    "post_office": "django-post-office",
    "mailer": "django-mailer",
    "celery": "Celery + django-celery-email",
}


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    enqueue_us: float
    delivered_per_s: float


def peers_python() -> Path:
    """The peers' virtualenv, made (or remade when the requirements change) here."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".requirements"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        print(f"installing the peers into {PEERS_VENV} (once)", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(PEERS_VENV)
        pip = [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)]
        subprocess.run(pip, check=True)
        stamp.write_text(wanted)
    return python


@contextmanager
def redis_server() -> Iterator[int]:
    binary = debian_binary("redis-server", "redis-server")
    if binary is None:
        raise RuntimeError("the Celery peer needs Debian's redis-server")
    port = free_port()
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        yield port
    finally:
        process.terminate()
        process.wait()


def run_peer(python: Path, peer: str, redis_port: int) -> Result:
    with tempfile.TemporaryDirectory() as folder, counting_sink() as (smtp_port, delivered):
        env = {**os.environ, "PEERS_DB": f"{folder}/peer.sqlite3"}
        env |= {"PEERS_SMTP_PORT": str(smtp_port), "PEERS_REDIS_PORT": str(redis_port)}
        driver = [str(python), str(DRIVER)]
        run_process([*driver, "setup", peer], env)
        enqueue = float(run_process([*driver, "enqueue", peer, str(COUNT)], env).output)
        if peer == "celery":
            seconds = _until_delivered([*driver, "deliver", peer], env, delivered)
        else:
            seconds = run_process([*driver, "deliver", peer], env).seconds
        assert delivered() == COUNT, f"{peer} delivered {delivered()} of {COUNT}"
    return Result(PEERS[peer], enqueue, COUNT / seconds)


def _until_delivered(
    command: list[str], env: dict[str, str], delivered: Callable[[], int]
) -> float:
    """A worker that runs until stopped: the time until the sink has every e-mail."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while (
            delivered() < COUNT and process.poll() is None and time.perf_counter() - started < 900
        ):
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait()


def run_mailspool() -> Result:
    with tempfile.TemporaryDirectory() as folder, counting_sink() as (smtp_port, delivered):
        store = FileStore(Path(folder) / "spool")
        settings = Settings.load(store=store.url)
        # imported before the clock starts, as the peers' modules are (``import mailspool``
        # loads its API on first use)
        request, send_mail = mailspool.request, mailspool.send_mail
        started = time.perf_counter()
        with request(store=store, settings=settings):
            for i in range(COUNT):
                send_mail(f"f{i}@example.com", SUBJECT, HTML.format(name=i), HEADERS)
        enqueue = (time.perf_counter() - started) / COUNT
        run = mailspool_drain(store.url, f"smtp://127.0.0.1:{smtp_port}")
        assert delivered() == COUNT, f"mailspool delivered {delivered()} of {COUNT}"
    return Result("mailspool", enqueue * 1e6, COUNT / run.seconds)


def plot(results: list[Result]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import NullFormatter

    names = [r.name.replace(" + ", "\n+ ") for r in results]
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    left.barh(names, [r.delivered_per_s for r in results], color="tab:blue")
    left.set_xlabel(f"e-mails delivered per second ({COUNT}, whole process)")
    right.barh(names, [r.enqueue_us for r in results], color="tab:orange")
    right.set_xscale("log")
    right.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap
    right.set_xlabel("enqueue cost, microseconds per e-mail (log)")
    figure.suptitle(f"{COUNT} queued ~2 KB e-mails to Postfix smtp-sink, medians of {ROUNDS} runs")
    figure.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PLOT, dpi=100)


def median(runs: list[Result]) -> Result:
    return Result(
        runs[0].name,
        statistics.median(r.enqueue_us for r in runs),
        statistics.median(r.delivered_per_s for r in runs),
    )


def main() -> dict[str, object]:
    """Print the table and the ratios; return them, each row with its figures."""
    python = peers_python()
    runs: dict[str, list[Result]] = {}
    with redis_server() as redis_port:
        for _ in range(ROUNDS):
            for peer in PEERS:
                runs.setdefault(peer, []).append(run_peer(python, peer, redis_port))
            runs.setdefault("mailspool", []).append(run_mailspool())
    results = [median(runs[peer]) for peer in PEERS]
    ours = median(runs["mailspool"])
    print(
        f"{COUNT} queued ~2 KB e-mails, delivered to Postfix smtp-sink on 127.0.0.1; "
        f"medians of {ROUNDS} rounds"
    )
    print(f"  {'':30} {'enqueue us/e-mail':>18} {'delivery msg/s':>15}  delivery runs")
    for result, each in zip([*results, ours], runs.values(), strict=True):
        rates = ", ".join(f"{r.delivered_per_s:.0f}" for r in each)
        print(
            f"  {result.name:30} {result.enqueue_us:18.1f} {result.delivered_per_s:15.0f}  {rates}"
        )
    fastest = max(results, key=lambda r: r.delivered_per_s)
    cheapest = min(results, key=lambda r: r.enqueue_us)
    delivery = ours.delivered_per_s / fastest.delivered_per_s
    enqueue = cheapest.enqueue_us / ours.enqueue_us
    print(f"  delivery: {delivery:.2f}x the fastest peer ({fastest.name}); target >= 4x")
    print(
        f"  enqueue: {enqueue:.0f}x cheaper than the cheapest peer ({cheapest.name}); target >= 6x"
    )
    plot([*results, ours])
    print(f"  plot: {PLOT.relative_to(ROOT)}")
    return {
        "rows": [*results, ours],
        "fastest": fastest.name,
        "cheapest": cheapest.name,
        "delivery_vs_fastest": delivery,
        "enqueue_vs_cheapest": enqueue,
    }


if __name__ == "__main__":
    main()
