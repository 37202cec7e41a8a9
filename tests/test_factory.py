"""One worker factory for every trigger: options, rate and pool size from the settings."""

from __future__ import annotations

import ast
from contextlib import closing
from pathlib import Path

import pytest

import mailspool
from mailspool import tracing
from mailspool.config import Settings
from mailspool.delivery.factory import build_worker, open_delivery_transport, open_worker
from mailspool.delivery.steps import SuppressionScreen, UnsubscribeHeaders
from mailspool.delivery.traced import TracedSends
from mailspool.delivery.worker import WorkerOptions
from mailspool.stores.memory import MemoryStore
from mailspool.transports.memory import MemoryTransport
from mailspool.transports.ses import SESTransport
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.local import drain
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.smtp_server import SMTPSink

SRC = Path(__file__).resolve().parent.parent / "src" / "mailspool"


def test_worker_options_default_to_the_settings_defaults() -> None:
    defaults = Settings.load(environ={})
    assert WorkerOptions() == WorkerOptions(**defaults.worker_options())
    assert defaults.worker_options() == {
        "concurrency": 32,
        "priority_share": 0.1,  # of the rate and the 24-hour quota, left to priority mail
        "ledger_commit_ms": None,  # the store's: 1000 on S3, 0 elsewhere
        "max_attempts": 5,
        "retry_base": 1.0,
        "queue_lifetime": 432000.0,  # 5 days, as Postfix
        "default_sender": "mailspool <mailspool@localhost>",
    }


def test_the_settings_become_the_workers_options() -> None:
    settings = Settings.load(concurrency=3, max_attempts=2, retry_base=0.5, sender="a@example.com")
    worker = build_worker(settings, MemoryStore(), MemoryTransport(), lease_ttl=9.0)
    try:
        assert worker.options == WorkerOptions(
            concurrency=3,
            max_attempts=2,
            retry_base=0.5,
            default_sender="a@example.com",
            lease_ttl=9.0,
        )
    finally:
        worker.close()


def test_the_smtp_pool_follows_the_concurrency_unless_the_url_sets_it(
    smtp_server: SMTPSink,
) -> None:
    settings = Settings.load(transport=smtp_server.url, concurrency=48)
    with open_delivery_transport(settings) as transport:
        assert isinstance(transport, SMTPTransport)
        assert transport.max_connections == 48
    explicit = Settings.load(transport=smtp_server.url_with(max_connections="3"), concurrency=48)
    with open_delivery_transport(explicit) as transport:
        assert isinstance(transport, SMTPTransport)
        assert transport.max_connections == 3


def test_open_worker_delivers_with_one_connection_per_sender_thread(
    spool: Path, smtp_server: SMTPSink
) -> None:
    settings = Settings.load(store=f"file://{spool}", transport=smtp_server.url, concurrency=12)
    with mailspool.request(settings=settings):
        for n in range(30):
            mailspool.send_mail(f"u{n}@example.com", f"n{n}", "<p>x</p>")
    with open_worker(settings) as worker:
        assert isinstance(worker.transport, SMTPTransport)
        assert worker.transport.max_connections == worker.options.concurrency == 12
        report = drain(worker)
    assert report.sent == 30
    assert len(smtp_server.envelopes) == 30


def test_a_transport_has_no_rate_of_its_own_by_default() -> None:
    transport = MemoryTransport()
    assert transport.send_rate() is None
    worker = build_worker(Settings.load(), MemoryStore(), transport)
    try:
        assert worker.limiter.rate is None
    finally:
        worker.close()


def test_without_max_rate_the_worker_sends_at_the_ses_accounts_rate(aws: MotoServer) -> None:
    """The server's GetAccount answers MaxSendRate 14 a second (``moto_ses_quota``)."""
    with closing(SESTransport(region="us-east-1")) as ses:
        worker = build_worker(Settings.load(transport="ses://us-east-1"), MemoryStore(), ses)
        explicit = build_worker(Settings.load(max_rate=50), MemoryStore(), ses)
        try:
            assert worker.limiter.rate == pytest.approx(14.0 * 0.9)  # 10% left to priority
            assert explicit.limiter.rate == pytest.approx(50.0 * 0.9)
        finally:
            worker.close()
            explicit.close()


@pytest.mark.parametrize("name", ["Worker", "WorkerOptions"])
def test_only_the_factory_makes_workers(name: str) -> None:
    """Every trigger (CLI, SQS, Django, demo, Lambda) gets its worker from the factory."""
    makers = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name:
                makers.add(path.relative_to(SRC).as_posix())
    assert makers <= {"delivery/factory.py", "delivery/worker.py"}
    assert "delivery/factory.py" in makers


def test_every_trigger_gets_the_unsubscribe_links_and_the_rate_guard() -> None:
    settings = Settings.load(
        unsubscribe_url="https://example.com/unsubscribe",
        unsubscribe_secret="s" * 32,
        rate_guard="warn",
    )
    worker = build_worker(settings, MemoryStore(), MemoryTransport())
    plain = build_worker(Settings.load(), MemoryStore(), MemoryTransport())
    try:
        traced = [TracedSends] if tracing.available() else []  # the [otel] extra: first
        assert [type(step) for step in worker.steps] == [
            *traced,
            SuppressionScreen,
            UnsubscribeHeaders,
        ]
        assert worker.guard is not None
        assert [type(step) for step in plain.steps] == [*traced, SuppressionScreen]
        assert plain.guard is None
    finally:
        worker.close()
        plain.close()
