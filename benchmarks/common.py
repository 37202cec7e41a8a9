"""Helpers shared by the benchmarks: timing, the CLI run as a user runs it (this
checkout's or another's), and the e-mail they send."""

from __future__ import annotations

import compileall
import functools
import os
import resource
import smtplib
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

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


@dataclass(frozen=True, slots=True)
class ProcessRun:
    """A command timed whole, start-up included, with the CPU its processes used."""

    seconds: float
    user: float
    system: float
    output: str


def run_process(command: list[str], env: dict[str, str] | None = None) -> ProcessRun:
    """Run ``command`` to the end; raise with its output if it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return ProcessRun(
        seconds, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, done.stdout
    )


def before_src() -> str | None:
    """The ``src`` folder of the checkout to compare with (``BENCH_BEFORE_SRC``), or None;
    exits naming the variable when that folder holds no ``mailspool`` package, since the
    installed one would otherwise run in its place, unseen."""
    src = os.environ.get("BENCH_BEFORE_SRC")
    if src and not (Path(src) / "mailspool" / "__init__.py").is_file():
        sys.exit(f"BENCH_BEFORE_SRC={src}: no mailspool/__init__.py there (give a checkout's src)")
    return src or None


def this_src() -> str:
    """The folder holding the ``mailspool`` package this process imported: the "after"
    side of a comparison, whichever checkout the virtualenv has installed."""
    import mailspool  # here: the peers' drivers import this module without mailspool

    return str(Path(mailspool.__file__).resolve().parent.parent)


@functools.cache
def compiled(src: str) -> str:
    """``src``, its modules compiled to bytecode once: each side of a comparison starts
    as an installed package does, not paying to compile every module at each start (a
    checkout never run, or ``PYTHONDONTWRITEBYTECODE`` set, leaves none)."""
    compileall.compile_dir(src, quiet=1)
    return src


def mailspool_drain(
    store_url: str,
    transport_url: str,
    *extra: str,
    settings: dict[str, str] | None = None,
    src: str | None = None,
) -> ProcessRun:
    """``mailspool worker --drain`` with the CLI's defaults, as a user runs it;
    ``settings``: ``MAILSPOOL_*`` variables it runs with; ``src``: the ``src`` folder of
    another checkout whose CLI runs instead of this one's (``before_src()``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSPOOL_")}
    env |= settings or {}
    # First on the path, ahead of whatever checkout the virtualenv has installed: the
    # package asked for, else the one this process imported (and queued the e-mails with).
    first = compiled(src or this_src())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (first, os.environ.get("PYTHONPATH"))))
    command = [sys.executable, "-m", "mailspool", "worker", "--drain", "--no-progress"]
    return run_process([*command, "--store", store_url, "--transport", transport_url, *extra], env)


def loop_message(i: int) -> EmailMessage:
    """The e-mail the plain smtplib loops send, as mailspool's own (HTML, the same headers)."""
    message = EmailMessage()
    message["From"] = HEADERS["From"]
    message["To"] = f"Follower {i} <f{i}@example.com>"
    message["Reply-To"] = HEADERS["Reply-To"]
    message["Subject"] = SUBJECT
    message.set_content(HTML.format(name=i), subtype="html")
    return message


def loop_rate(url: str, count: int, cafile: str | None = None) -> float:
    """The plain loop every benchmark compares with, as an application writes it: one
    reused ``smtplib`` connection (STARTTLS when ``cafile``), each e-mail made
    (``loop_message``) and sent in turn, QUIT; e-mails a second."""
    host, port = url.removeprefix("smtp://").partition("?")[0].split(":")
    started = time.perf_counter()
    with smtplib.SMTP(host, int(port), timeout=60) as connection:
        if cafile is not None:
            connection.starttls(context=ssl.create_default_context(cafile=cafile))
        for i in range(count):
            connection.send_message(loop_message(i))
    return count / (time.perf_counter() - started)
