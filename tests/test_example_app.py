"""The example blog starts with one command and does what its README says."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def post(url: str) -> str:
    with urllib.request.urlopen(
        urllib.request.Request(url, data=b"", method="POST"), timeout=30
    ) as response:
        return str(response.read().decode())


def test_the_blog_notifies_followers_and_sends_the_reset_at_once(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSPOOL_")}
    env |= {"BLOG_ADDRESS": address, "BLOG_DATA": str(tmp_path), "BLOG_FOLLOWERS": "150"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "blog" / "run.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    outbox = tmp_path / "outbox"
    try:
        wait_for(lambda: answers(f"http://{address}/"))
        assert "reset link sent" in post(f"http://{address}/forgot")
        assert len(list(outbox.glob("*.eml"))) == 1  # priority: there before the response
        assert "150 followers notified" in post(f"http://{address}/publish")
        wait_for(lambda: len(list(outbox.glob("*.eml"))) == 151)  # the worker beside it
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
