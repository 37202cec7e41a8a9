"""A quarantined file is downloaded in chunks: the server's memory does not grow with
the file. Measured on a real `mailspool serve` process, by the peak resident size the
kernel records for it (VmHWM in /proc/PID/status), never by time."""

from __future__ import annotations

import hashlib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mailspool.spool import layout
from mailspool.stores.file import FileStore
from tests.dashboard_common import dashboard_process

MIB = 1 << 20
SIZE = 64 * MIB
#: Generous (streaming grows it by a few MiB): half of what one download held whole needs.
BOUND = 32 * MIB

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads /proc/PID/status (Linux)"
)


def peak_resident(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM line")


def download(url: str) -> tuple[int, str]:
    """The download's size and SHA-256, read a chunk at a time."""
    digest, size = hashlib.sha256(), 0
    with urllib.request.urlopen(url, timeout=300) as answer:
        assert answer.status == 200
        assert answer.headers["content-disposition"] == 'attachment; filename="big.json"'
        while chunk := answer.read(MIB):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@pytest.mark.slow
def test_large_downloads_keep_the_server_memory_bounded(spool: Path) -> None:
    block = hashlib.sha256(b"seed").digest() * (MIB // 32)
    data = block * (SIZE // len(block))
    store = FileStore(spool)
    store.put(layout.quarantine_key("queue/big.json"), data)
    store.put(layout.quarantine_key("queue/small.json"), b"{broken")
    expected = (len(data), hashlib.sha256(data).hexdigest())
    del data, block
    with dashboard_process(spool) as (base, process):
        with urllib.request.urlopen(f"{base}/quarantine", timeout=60) as page:
            assert b"big.json" in page.read()  # the pages are loaded: the baseline
        with urllib.request.urlopen(f"{base}/quarantine/download?name=small.json") as small:
            assert small.read() == b"{broken"
        before = peak_resident(process.pid)
        url = f"{base}/quarantine/download?name=big.json"
        with ThreadPoolExecutor(2) as pool:  # two at once, then two more
            results = list(pool.map(download, [url] * 4))
        growth = peak_resident(process.pid) - before
    assert results == [expected] * 4
    assert growth < BOUND, f"the server grew by {growth / MIB:.1f} MiB"


def test_a_large_download_streams_through_wsgi_and_django(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from mailspool.web import Dashboard

    data = bytes(range(256)) * (3 * MIB // 256 + 7)  # past one chunk: streamed
    FileStore(spool).put(layout.quarantine_key("queue/big.json"), data)
    app = Flask(__name__)
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/ops/mail": Dashboard(FileStore(spool), token="").wsgi()}
    )
    answer = app.test_client().get("/ops/mail/quarantine/download?name=big.json")
    assert answer.status_code == 200
    assert answer.is_streamed
    assert answer.data == data

    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
    from tests import django_settings

    django_settings.configure()
    from django.test import Client

    from mailspool.integrations import django_dashboard

    monkeypatch.setattr(django_dashboard, "_built", [])  # this test's spool
    streamed = Client().get("/ops/mail/quarantine/download?name=big.json")
    assert streamed.status_code == 200
    assert streamed.streaming
    assert b"".join(streamed.streaming_content) == data  # type: ignore[attr-defined]
