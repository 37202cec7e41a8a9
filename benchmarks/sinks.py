"""SMTP sinks for the benchmarks: Postfix's smtp-sink when installed, else aiosmtpd.

``aiosmtpd`` accepts at most about 2800 messages/s on this kind of machine, below what
the worker can send, so throughput figures use ``smtp-sink`` (Debian's ``postfix``
package) when it is there, and say which sink they used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.fixtures.smtp_server import running_smtp_server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def smtp_sink_path() -> str | None:
    return shutil.which("smtp-sink") or (
        "/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None
    )


@contextmanager
def fast_sink() -> Iterator[tuple[str, str]]:
    """``(url, name)`` of the fastest sink available on 127.0.0.1."""
    binary = smtp_sink_path()
    if binary is None:
        with running_smtp_server() as server:
            yield server.url, "aiosmtpd"
        return
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [binary, *user, f"127.0.0.1:{port}", "1000"], stdout=subprocess.DEVNULL
    )
    try:
        _wait_listening(port)
        yield f"smtp://127.0.0.1:{port}", "postfix smtp-sink"
    finally:
        process.terminate()
        process.wait()


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"smtp-sink did not listen on port {port}")
