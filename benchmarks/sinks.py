"""SMTP sinks for the benchmarks: Postfix's smtp-sink, else aiosmtpd.

``aiosmtpd`` accepts at most about 2800 messages/s on this kind of machine, below what
the worker can send, so throughput figures use ``smtp-sink`` (Debian's ``postfix``
package, installed with apt when missing and the benchmark runs as root), and say which
sink they used.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.fixtures.smtp_server import running_smtp_server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def debian_binary(name: str, package: str) -> str | None:
    """The path of ``name`` from Debian's ``package``, installed with apt if missing
    (as root only; the benchmarks then say which stand-in they used)."""
    found = shutil.which(name) or next(
        (f"{d}/{name}" for d in ("/usr/sbin", "/usr/bin") if os.path.exists(f"{d}/{name}")),
        None,
    )
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print(f"installing Debian's {package} for {name} (once)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "check": False}
    subprocess.run(["apt-get", "update", "-q"], **quiet)  # type: ignore[call-overload]
    subprocess.run(["apt-get", "install", "-y", "-q", package], **quiet)  # type: ignore[call-overload]
    return shutil.which(name) or (
        f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None
    )


def smtp_sink_path() -> str | None:
    return debian_binary("smtp-sink", "postfix")


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


@contextmanager
def counting_sink() -> Iterator[tuple[int, Callable[[], int]]]:
    """``(port, delivered)`` of a Postfix smtp-sink that counts the messages it accepted."""
    binary = smtp_sink_path()
    if binary is None:
        raise RuntimeError("this benchmark needs Postfix's smtp-sink (Debian's postfix)")
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [binary, "-c", *user, f"127.0.0.1:{port}", "1000"], stdout=output
        )

        def delivered() -> int:
            output.seek(0)
            counts = re.findall(rb"mesg=(\d+)", output.read()[-200:])
            return int(counts[-1]) if counts else 0

        try:
            _wait_listening(port)
            yield port, delivered
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
