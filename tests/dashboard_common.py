"""A store with sent, failed and pending e-mails, and `mailspool serve` running on it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailspool.config import Settings
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.message import Message
from mailspool.producer import api
from mailspool.stores.file import FileStore
from mailspool.transports import open_transport
from mailspool.triggers.local import drain
from tests.fixtures.smtp_server import SMTPSink

GONE = "gone@example.com"


def cli(
    spool: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailspool", *args],
        env={**os.environ, "MAILSPOOL_STORE": f"file://{spool}", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def status_json(spool: Path) -> dict[str, object]:
    result = cli(spool, "status", "--json")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def queue(spool: Path, *recipients: str) -> None:
    settings = Settings.load(store=f"file://{spool}")
    for recipient in recipients:
        message = Message.build(to=[recipient], subject=f"Hello {recipient}", text="Hi.")
        api.send_message(message, priority=False, settings=settings)


def deliver(spool: Path, server: SMTPSink | str) -> None:
    """Drain the spool into the SMTP server (or the transport URL), as `mailspool worker
    --drain` does."""
    store = FileStore(spool)
    transport = open_transport(server if isinstance(server, str) else server.url)
    worker = Worker(store, transport, options=WorkerOptions(concurrency=2, max_attempts=1))
    try:
        drain(worker)
    finally:
        worker.close()
        transport.close()
        store.close()


def mixed_store(spool: Path, server: SMTPSink) -> None:
    """Three e-mails sent, one refused for good (GONE), two pending."""
    server.refuse_recipient(GONE)
    queue(spool, "ann@example.com", "bob@example.com", "cy@example.com", GONE)
    deliver(spool, server)
    queue(spool, "dee@example.com", "eve@example.com")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def running_dashboard(spool: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`mailspool serve` in its own process; yields its base URL."""
    with dashboard_process(spool, *extra, env=env) as (base, _):
        yield base


@contextmanager
def dashboard_process(
    spool: Path, *extra: str, env: dict[str, str] | None = None, bind: str = "127.0.0.1"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`mailspool serve` in its own process (listening on ``bind``, an IPv4 address);
    yields its base URL and the process."""
    port = free_port()
    listen = ["--host", bind] if bind != "127.0.0.1" else []
    process = subprocess.Popen(
        [sys.executable, "-m", "mailspool", "serve", "--port", str(port), *listen, *extra],
        env={**os.environ, "MAILSPOOL_STORE": f"file://{spool}", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://{bind}:{port}"
    try:
        wait_until_up(base, process)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


def wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "mailspool serve exited before answering"
        try:
            with urllib.request.urlopen(f"{base}/static/style.css", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    raise AssertionError(f"{base} did not answer within a minute")
