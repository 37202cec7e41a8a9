"""The steps around each send (``delivery.steps``): run in order, a refusal fails that one
e-mail, and no step changes how e-mails are sent (metrics included).

Real parts: a file store, aiosmtpd servers on 127.0.0.1, the CLI as a whole process.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry

import mailspool
from mailspool.config import Settings
from mailspool.delivery.factory import build_worker, open_delivery_transport
from mailspool.delivery.steps import Call, Draft, OutcomeCallback, Refused, SendStep
from mailspool.spool import layout
from mailspool.spool.records import LedgerState
from mailspool.stores.file import FileStore
from mailspool.triggers.local import drain
from mailspool.web.metrics import SendMetrics
from tests.fixtures.smtp_server import SMTPSink, running_smtp_server


def queue(store: FileStore, count: int) -> None:
    settings = Settings.load(store=store.url)
    with mailspool.request(store=store, settings=settings):
        for number in range(count):
            mailspool.send_mail(f"f{number}@example.com", f"note {number}", "<p>hi</p>")


class RefuseOne(SendStep):
    """Refuses one address and tags every other e-mail, to show the order of steps."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.calls: list[Call] = []

    def prepare(self, draft: Draft) -> Draft:
        if self.address in draft.message.to:
            raise Refused(f"{self.address} is not wanted here")
        headers = (*draft.message.headers, ("X-Step", "seen"))
        return Draft(replace(draft.message, headers=headers), draft.suppressed)

    def answered(self, call: Call) -> None:
        self.calls.append(call)


def test_a_step_refuses_one_email_changes_the_others_and_sees_each_call(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    store = FileStore(tmp_path / "spool")
    queue(store, 5)
    settings = Settings.load(store=store.url, transport=smtp_server.url, concurrency=2)
    step = RefuseOne("f3@example.com")
    outcomes: list[LedgerState] = []
    with open_delivery_transport(settings) as transport:
        worker = build_worker(
            settings,
            store,
            transport,
            steps=[step, OutcomeCallback(lambda _b, _i, state: outcomes.append(state))],
        )
        try:
            report = drain(worker)
        finally:
            worker.close()
    assert (report.sent, report.failed) == (4, 1)
    assert sorted(e.rcpt_tos[0] for e in smtp_server.envelopes) == [
        f"f{n}@example.com" for n in (0, 1, 2, 4)
    ]
    assert {str(m["X-Step"]) for m in smtp_server.messages} == {"seen"}
    assert len(step.calls) == 4  # refused before the transport: no call
    assert sorted(outcomes) == sorted([LedgerState.SENT] * 4 + [LedgerState.FAILED])
    (failed,) = [info.key for info in store.list(layout.FAILED)]
    assert b"is not wanted here" in store.get(failed)


def test_the_metrics_step_counts_without_changing_the_send(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    store = FileStore(tmp_path / "spool")
    queue(store, 6)
    registry = CollectorRegistry()
    settings = Settings.load(store=store.url, transport=smtp_server.url)
    with open_delivery_transport(settings) as transport:
        worker = build_worker(settings, store, transport, steps=[SendMetrics(registry)])
        try:
            drain(worker)
        finally:
            worker.close()
    assert registry.get_sample_value("mailspool_sends_total", {"outcome": "sent"}) == 6.0
    assert registry.get_sample_value("mailspool_send_seconds_count") == 6.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _cli_drain(spool: Path, url: str, *extra: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "worker", "--drain", "--no-progress",
         "--processes", "1", "--concurrency", "1", "--store", f"file://{spool}",
         "--transport", url, *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert " 8 sent" in result.stdout + result.stderr


def test_the_same_send_path_with_and_without_metrics_port(tmp_path: Path) -> None:
    """``--metrics-port`` adds a step; the server sees the very same transactions: the
    same round trips per e-mail (pipelined) over the same one connection."""
    seen = []
    for extra in ((), ("--metrics-port", str(_free_port()))):
        spool = tmp_path / f"spool{len(seen)}"
        queue(FileStore(spool), 8)
        with running_smtp_server(pipelining=True) as server:
            _cli_drain(spool, server.url, *extra)
            seen.append((server.reads, server.connections, len(server.envelopes)))
    assert seen[0] == seen[1]
    assert seen[0][1:] == (1, 8)
