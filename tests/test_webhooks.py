"""Signed webhooks end to end: e-mails queued and sent, their events through the outbox
in the store to a real HTTP receiver on 127.0.0.1 that is down for a while, then up.

Real parts: a file store, the worker's one drain, a stdlib HTTP server, and the
Standard Webhooks library verifying each delivery as an application would. Time is a
clock the test moves (``Clock``): no test waits for a retry delay.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from standardwebhooks.webhooks import Webhook

import mailspool
from mailspool.cli import cli
from mailspool.config import Settings
from mailspool.delivery.factory import build_worker
from mailspool.spool import layout
from mailspool.stores.file import FileStore
from mailspool.transports.memory import MemoryTransport
from mailspool.triggers.local import drain, run_forever
from mailspool.web import Dashboard
from mailspool.web.http import Request
from mailspool.web.metrics import render_metrics
from mailspool.webhook_rules import EventType
from mailspool.webhooks.deliver import JITTER, Deliverer, retry_delay
from mailspool.webhooks.events import email_event, event_id
from mailspool.webhooks.outbox import FAILED, PENDING, Outbox, outbox_stats
from mailspool.webhooks.setup import receiver_for
from tests.fixtures.webhook_receiver import WebhookReceiver, webhook_receiver

__all__ = ["webhook_receiver"]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Clock:
    """The deliverer's clock: it moves only when the test says."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settings_for(store: FileStore, receiver: WebhookReceiver, **more: object) -> Settings:
    return Settings.load(store=store.url, webhook_url=receiver.url, webhook_secret=SECRET, **more)


def outbox_pending(store: FileStore) -> int:
    answer = CliRunner().invoke(cli, ["status", "--json", "--store", store.url])
    assert answer.exit_code == 0, answer.output
    webhooks: dict[str, int] = json.loads(answer.stdout)["webhooks"]
    return webhooks["pending"]


def test_every_event_arrives_signed_after_the_receiver_comes_up(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    store = FileStore(tmp_path / "spool")
    settings = settings_for(store, webhook_receiver)
    with mailspool.request(store=store, settings=settings) as scope:
        for number in range(3):
            mailspool.send_mail(f"u{number}@example.com", f"note {number}", "<p>hi</p>")
    [key] = scope.keys
    batch_id = layout.batch_id_from_key(key)
    clock = Clock(time.time())
    worker = build_worker(settings, store, MemoryTransport())
    assert worker.webhooks is not None
    worker.webhooks = Deliverer(store, worker.webhooks.receiver, clock=clock)
    try:
        report = drain(worker)  # the receiver is down: the events wait
    finally:
        worker.close()
    assert report.sent == 3
    assert outbox_pending(store) == 6  # 3 queued, 3 sent

    webhook_receiver.start()
    assert worker.webhooks.drain().delivered == 0  # not before the next try
    assert webhook_receiver.deliveries == []
    clock.now += retry_delay(1) * (1 + JITTER)
    assert worker.webhooks.drain().delivered == 6
    assert outbox_pending(store) == 0

    seen = {}
    for delivery in webhook_receiver.deliveries:
        body = Webhook(SECRET).verify(delivery.body, delivery.headers)
        seen[delivery.headers["webhook-id"]] = body
        assert set(body) == {"type", "timestamp", "data"}
        assert b"<p>hi</p>" not in delivery.body
        assert b"@example.com" not in delivery.body
    expected = {
        event_id(kind, batch_id, index): kind
        for kind in ("email.queued", "email.sent")
        for index in range(3)
    }
    assert {identity: body["type"] for identity, body in seen.items()} == expected


class CountingStore(FileStore):
    """A file store that counts the objects it reads."""

    reads = 0

    def get_at_most(self, key: str, limit: int, setting: str = "the limit") -> bytes:
        self.reads += 1
        return super().get_at_most(key, limit, setting)


def test_a_busy_receiver_holds_the_outbox_a_rejected_event_waits_alone(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    store = CountingStore(tmp_path / "spool")
    receiver = receiver_for(settings_for(store, webhook_receiver))
    assert receiver is not None
    clock = Clock(time.time())
    deliverer = Deliverer(store, receiver, clock=clock)
    Outbox(store).add([email_event(EventType.SENT, "b1", i) for i in range(3)])
    webhook_receiver.start()
    webhook_receiver.status = 503
    webhook_receiver.headers = {"Retry-After": "120"}
    assert (deliverer.drain().waiting, len(webhook_receiver.deliveries)) == ("HTTP 503", 1)
    clock.now += retry_delay(1) * (1 + JITTER)
    assert deliverer.drain().delivered == 0  # Retry-After: two minutes, not 5 s
    assert len(webhook_receiver.deliveries) == 1

    clock.now += 120
    webhook_receiver.status, webhook_receiver.headers = 400, {}
    report = deliverer.drain()
    assert (report.delivered, report.rejected, report.waiting) == (0, 3, "")
    stats = outbox_stats(store, now=clock.now)
    assert (stats.pending, stats.bundles, stats.failed) == (3, 3, 0)  # each waits alone

    webhook_receiver.status = 204
    store.reads = 0
    assert deliverer.drain().delivered == 0  # not before their own next try
    assert store.reads == 0  # known not due: not even read
    clock.now += retry_delay(2) * (1 + JITTER)
    assert deliverer.drain().delivered == 3
    assert outbox_stats(store, now=clock.now).pending == 0
    ids = [d.headers["webhook-id"] for d in webhook_receiver.deliveries]
    assert len(ids) == 7
    assert len(set(ids)) == 3  # each event under its one id, every time


def test_410_gone_makes_the_outbox_wait_the_longest(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    store = FileStore(tmp_path / "spool")
    receiver = receiver_for(settings_for(store, webhook_receiver))
    assert receiver is not None
    clock = Clock(time.time())
    deliverer = Deliverer(store, receiver, clock=clock)
    Outbox(store).add([email_event(EventType.SENT, "b6", 0)])
    webhook_receiver.start()
    webhook_receiver.status = 410
    assert deliverer.drain().waiting == "HTTP 410"
    clock.now += 3599
    deliverer.drain()
    assert len(webhook_receiver.deliveries) == 1
    assert outbox_stats(store, now=clock.now).pending == 1


def test_an_event_never_taken_expires_after_the_retention(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    down = WebhookReceiver()  # never started: connections refused
    receiver = receiver_for(settings_for(store, down))
    assert receiver is not None
    clock = Clock(time.time())
    deliverer = Deliverer(store, receiver, clock=clock, retention=86400.0)
    Outbox(store).add([email_event(EventType.FAILED, "b2", 0)], now=clock.now)
    assert deliverer.drain().waiting.startswith("no answer from the receiver")
    clock.now += 86401.0
    assert deliverer.drain().expired == 1
    assert outbox_stats(store, now=clock.now).failed == 1
    [aside] = list(store.keys(FAILED))
    assert "MAILSPOOL_WEBHOOK_RETENTION" in json.loads(store.get(aside))["error"]


def test_a_hostile_bundle_is_set_aside_and_the_others_go(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    store = FileStore(tmp_path / "spool")
    receiver = receiver_for(settings_for(store, webhook_receiver))
    assert receiver is not None
    now = time.time()
    store.put(f"{PENDING}{layout.new_batch_id(now)}.1.json", b"\x00not json")
    good = {
        "version": 1,
        "attempts": 0,
        "next_try": 0,
        "error": "",
        "events": [
            email_event(EventType.SENT, "b3", 0).to_record(),
            {"id": "evt_bad", "type": "x"},
        ],
    }
    store.put(f"{PENDING}{layout.new_batch_id(now + 1)}.2.json", json.dumps(good).encode())
    store.put(f"{PENDING}../escape.1.json".replace("../", "x.."), b"{}")
    webhook_receiver.start()
    report = Deliverer(store, receiver).drain()
    assert report.delivered == 1
    assert len(webhook_receiver.deliveries) == 1
    assert outbox_stats(store, now=now).failed == 1  # the unreadable bundle, kept whole


def test_the_worker_drains_the_outbox_when_the_receiver_is_up(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    store = FileStore(tmp_path / "spool")
    settings = settings_for(store, webhook_receiver, webhook_events="sent")
    webhook_receiver.start()
    with mailspool.request(store=store, settings=settings):
        mailspool.send_mail("a@example.com", "one", "<p>x</p>")
    worker = build_worker(settings, store, MemoryTransport())
    try:
        drain(worker)
    finally:
        worker.close()
    [delivery] = webhook_receiver.deliveries  # queued was not chosen
    assert Webhook(SECRET).verify(delivery.body, delivery.headers)["type"] == "email.sent"
    answer = CliRunner().invoke(cli, ["webhooks", "status", "--json", "--store", store.url])
    assert json.loads(answer.stdout)["pending"] == 0


def test_a_running_worker_delivers_events_beside_its_batches(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    store = FileStore(tmp_path / "spool")
    settings = settings_for(store, webhook_receiver)
    webhook_receiver.start()
    worker = build_worker(settings, store, MemoryTransport())
    runner = threading.Thread(target=run_forever, args=(worker,), kwargs={"poll_interval": 0.01})
    runner.start()
    try:
        with mailspool.request(store=store, settings=settings):
            mailspool.send_mail("a@example.com", "one", "<p>x</p>")
        arrived = webhook_receiver.wait_for(2)  # queued, then sent
    finally:
        worker.stop()
        runner.join()
        worker.close()
    kinds = sorted(Webhook(SECRET).verify(d.body, d.headers)["type"] for d in arrived)
    assert kinds == ["email.queued", "email.sent"]


def test_the_cli_drain_says_what_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(tmp_path / "spool")
    down = WebhookReceiver()
    Outbox(store).add([email_event(EventType.SENT, "b4", 0)])
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_URL", down.url)
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_SECRET", SECRET)
    answer = CliRunner().invoke(cli, ["webhooks", "drain", "--store", store.url])
    assert answer.exit_code == 1
    assert "1 pending" in answer.output
    assert "did not take every event" in answer.output


def test_the_dashboard_and_metrics_show_the_outbox(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "spool")
    Outbox(store).add([email_event(EventType.SENT, "b5", i) for i in range(3)])
    metrics = render_metrics(store).decode()
    assert 'mailspool_webhook_events{state="pending"} 3.0' in metrics
    page = Dashboard(store, public={}).handle(Request("GET", "/")).body.decode()
    assert "Webhook outbox: 3 event(s) waiting" in page


def test_the_package_verify_is_the_function_whichever_module_was_imported_first() -> None:
    """``mailspool.webhooks.verify`` names both a module and the function the package
    exports: the package's name must stay the function."""
    import importlib

    module = importlib.import_module("mailspool.webhooks.verify")
    from mailspool.webhooks import verify as exported

    assert exported is module.verify
    assert callable(exported)
