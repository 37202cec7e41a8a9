"""SES tenants: ``send_mail(..., tenant=...)`` (and Django's ``msg.tenant`` or
``X-Mailspool-Tenant``) keeps the tenant with the e-mail, in the batch file too, and SES
gets it as ``TenantName``.

SES runs as moto in server mode; what went over the wire is read with botocore's
``before-send`` event on the transport's client (moto takes ``TenantName`` and ignores
it). A botocore too old for tenants is a real botocore given an SES v2 model without
``TenantName`` (``AWS_DATA_PATH``, botocore's own way to load other models).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import jsonschema
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import mailspool
from mailspool.cli import cli
from mailspool.config import Settings
from mailspool.delivery.report import BatchStatus
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import InvalidMessage, SendingPaused
from mailspool.message import Message
from mailspool.ops.tenants import tenant_counts
from mailspool.setting_rules import SettingError
from mailspool.spool import batch, layout
from mailspool.spool.ledger import read_entries
from mailspool.spool.quota_record import QuotaRecord, record_quota
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from mailspool.tenant_options import parse_tenants, tenant_scoped
from mailspool.transports.open_transports import close_all, shared_transport
from mailspool.transports.ses import SESTransport
from tests.clock import Clock
from tests.dashboard_common import running_dashboard
from tests.fixtures.moto_server import MotoServer
from tests.strategies import messages

SENDER = "Shop <shop@example.com>"
TENANTS = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
SCHEMA = jsonschema.Draft202012Validator(
    json.loads((Path(__file__).parent.parent / "docs" / "batch-v1.schema.json").read_text())
)


class Wire:
    """The SES v2 requests a client sent, by operation, as they went over the wire."""

    def __init__(self, client: Any) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("before-send.sesv2", self._sent)

    def _sent(self, event_name: str, request: Any, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        if operation in ("SendEmail", "SendBulkEmail"):
            self.requests.append((operation, json.loads(request.body)))

    def tenants(self, operation: str = "SendEmail") -> list[str | None]:
        return [body.get("TenantName") for name, body in self.requests if name == operation]


@pytest.fixture
def ses(aws: MotoServer) -> Iterator[SESTransport]:
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    with closing(SESTransport(region="us-east-1")) as transport:
        yield transport


def note(i: int, tenant: str | None, subject: str | None = None) -> Message:
    return Message(
        to=(f"user{i}@example.org",),
        subject=subject or f"Order {i}",
        text="Shipped.",
        sender=SENDER,
        tenant=tenant,
    )


def deliver(store: MemoryStore, ses: SESTransport, messages: list[Message]) -> None:
    with mailspool.request(store=store, settings=Settings.load(store="memory:unused")) as scope:
        for message in messages:
            mailspool.send_message(message, priority=False)
    worker = Worker(store, ses, options=WorkerOptions(concurrency=2, default_sender=SENDER))
    try:
        for key in scope.keys:
            assert worker.deliver(key).status is BatchStatus.FINISHED
    finally:
        worker.close()


def test_each_deferred_email_goes_with_its_own_tenant_name(ses: SESTransport) -> None:
    wire = Wire(ses._client)
    tenants = ["shop-eu", "shop_us", None, "shop-eu"]
    deliver(MemoryStore(), ses, [note(i, t) for i, t in enumerate(tenants)])
    assert sorted(wire.tenants(), key=str) == sorted(tenants, key=str)


def test_a_bulk_call_carries_one_tenant(ses: SESTransport) -> None:
    wire = Wire(ses._client)
    same = [note(i, "shop-eu" if i % 2 else "shop-us", subject="New post") for i in range(6)]
    deliver(MemoryStore(), ses, same)
    bulk = [body for name, body in wire.requests if name == "SendBulkEmail"]
    assert sorted((b["TenantName"], len(b["BulkEmailEntries"])) for b in bulk) == [
        ("shop-eu", 3),
        ("shop-us", 3),
    ]


@contextmanager
def priority_ses(monkeypatch: pytest.MonkeyPatch, store_name: str) -> Iterator[Wire]:
    """``send_mail``'s priority path to moto's SES, set through the environment as an
    application sets it (a ``memory:`` store of that name); the wire its calls go on."""
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    monkeypatch.setenv("MAILSPOOL_TRANSPORT", "ses://us-east-1")
    monkeypatch.setenv("MAILSPOOL_STORE", f"memory:{store_name}")
    close_all()
    try:
        yield Wire(shared_transport("ses://us-east-1")._client)  # type: ignore[attr-defined]
    finally:
        close_all()


def test_send_mail_sends_a_priority_email_with_its_tenant(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with priority_ses(monkeypatch, "tenants") as wire:
        sent = mailspool.send_mail(
            "a@example.org", "Reset", "<p>Reset</p>", {"From": SENDER}, priority=True, tenant="t1"
        )
        assert sent is True
        assert wire.tenants() == ["t1"]


def test_send_mail_refuses_a_bad_tenant_name_naming_the_field() -> None:
    with pytest.raises(InvalidMessage, match="tenant"):
        mailspool.send_mail("a@example.org", "Hi", "<p>Hi</p>", priority=False, tenant="a b")


@given(messages(), TENANTS)
def test_the_tenant_is_kept_in_the_batch_file(message: Message, tenant: str) -> None:
    data = batch.encode(
        [replace(message, tenant=tenant), message],
        batch_id=layout.new_batch_id(),
        default_sender=SENDER,
    )
    SCHEMA.validate(json.loads(data))
    loaded = batch.decode(data)
    assert (loaded.message(0).tenant, loaded.message(1).tenant) == (tenant, None)


@given(st.one_of(st.text().filter(lambda t: not t or not t.isascii() or " " in t), st.integers()))
def test_a_bad_tenant_in_a_file_fails_that_email_only(bad: object) -> None:
    data = batch.encode(
        [note(0, "ok"), note(1, "ok")], batch_id=layout.new_batch_id(), default_sender=SENDER
    )
    document = json.loads(data)
    document["emails"][0]["tenant"] = bad
    loaded = batch.decode(json.dumps(document).encode())
    with pytest.raises(InvalidMessage, match="tenant"):
        loaded.message(0)
    assert loaded.message(1).tenant == "ok"


def test_a_botocore_without_tenant_name_pauses_naming_the_version(
    aws: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    model = botocore.loaders.Loader().load_service_model("sesv2", "service-2", "2019-09-27")
    for shape in ("SendEmailRequest", "SendBulkEmailRequest"):
        model["shapes"][shape]["members"].pop("TenantName")
    older = tmp_path / "sesv2" / "2019-09-27"
    older.mkdir(parents=True)
    (older / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    client = boto3.session.Session().client("sesv2", region_name="us-east-1")
    with closing(SESTransport(client=client)) as old:
        with pytest.raises(SendingPaused, match=r"botocore 1\.44 or later is needed"):
            old.send(note(0, "shop-eu"))
        assert old.send(note(1, None)).message_id  # without a tenant it still sends


def test_status_and_the_dashboard_count_each_tenants_emails(
    spool: Path, ses: SESTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
    other = "Other <other@example.com>"  # another sender: another batch, left pending
    sent = [note(0, "shop-eu"), note(1, "shop-eu"), note(2, "shop-us"), note(3, None)]
    with mailspool.request(settings=Settings.load()) as scope:
        for message in [*sent, replace(note(4, "shop-eu"), sender=other)]:
            mailspool.send_message(message, priority=False)
    store = FileStore(spool)
    first = next(k for k in scope.keys if batch.decode(store.get(k)).meta["from"] == SENDER)
    worker = Worker(store, ses, options=WorkerOptions(concurrency=2, default_sender=SENDER))
    try:
        assert worker.deliver(first).sent == 4
    finally:
        worker.close()
    result = CliRunner().invoke(cli, ["status", "--tenants", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tenants"] == {
        "(none)": {"pending": 0, "sent": 1, "failed": 0},
        "shop-eu": {"pending": 1, "sent": 2, "failed": 0},
        "shop-us": {"pending": 0, "sent": 1, "failed": 0},
    }
    at = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)  # a worker's last view of the 24-hour quota
    record_quota(store, QuotaRecord(used=850, limit=1000, cap=900, at=at))
    with running_dashboard(spool) as base, urllib.request.urlopen(base + "/", timeout=10) as page:
        html = page.read().decode()
    assert "SES 24-hour quota: 15% free: 850 of 1000 recipients" in html
    assert "By SES tenant" in html
    assert "<td>shop-eu</td><td>1</td><td>2</td><td>0</td>" in html


def test_counts_by_tenant_leave_out_an_unreadable_file_and_name_an_odd_tenant(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    data = batch.encode([note(0, "ok"), note(1, None)], batch_id="b1", default_sender=SENDER)
    document = json.loads(data)
    document["emails"][1]["tenant"] = ["not", "a", "name"]
    store.put(layout.queue_key("b1"), json.dumps(document).encode())
    store.put(layout.queue_key("b2"), b"{not json")
    assert {n: c.as_dict() for n, c in tenant_counts(store).items()} == {
        "(invalid)": {"pending": 1, "sent": 0, "failed": 0},
        "ok": {"pending": 1, "sent": 0, "failed": 0},
    }
    assert "left out of the counts by tenant: queue/b2.json" in caplog.text


# -- each tenant's configuration set, rate and daily cap (MAILSPOOL_SES_TENANTS) ---------


def test_a_tenants_configuration_set_goes_with_its_emails(aws: MotoServer) -> None:
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    tenants = parse_tenants('{"shop-eu": {"configuration_set": "eu-events"}}')
    with closing(SESTransport(region="us-east-1", configuration_set="all", tenants=tenants)) as ses:
        wire = Wire(ses._client)
        deliver(MemoryStore(), ses, [note(0, "shop-eu"), note(1, "shop-us"), note(2, None)])
    sets = sorted(
        (b.get("TenantName") or "", b.get("ConfigurationSetName")) for _, b in wire.requests
    )
    assert sets == [("", "all"), ("shop-eu", "eu-events"), ("shop-us", "all")]


def test_a_tenant_past_its_daily_cap_waits_and_the_others_go_on(ses: SESTransport) -> None:
    store, clock = MemoryStore(), Clock()
    messages = [note(i, "shop-eu" if i < 5 else "shop-us") for i in range(7)]
    with mailspool.request(store=store, settings=Settings.load(store="memory:unused")) as scope:
        for message in messages:
            mailspool.send_message(message, priority=False)
    (key,) = scope.keys
    tenants = parse_tenants({"shop-eu": {"daily_cap": 3, "max_rate": 5}})
    options = WorkerOptions(concurrency=2, default_sender=SENDER, clock=clock)
    worker = Worker(store, ses, options=options, tenants=tenants)
    try:
        assert worker.tenants is not None
        assert worker.tenants.limiters["shop-eu"].rate == 5.0
        report = worker.deliver(key, deadline=lambda: 600.0)
        assert (report.sent, report.failed, report.status) == (5, 0, BatchStatus.PAUSED)
        assert "daily cap" in (report.error or "")
        clock.now += 86400.0  # the tenant's window moves
        report = worker.deliver(key, deadline=lambda: 600.0)
        assert (report.sent, report.failed, report.status) == (2, 0, BatchStatus.FINISHED)
    finally:
        worker.close()
    entries = read_entries(store, layout.queued_batch_id(key)).values()
    assert {e.attempts for e in entries} == {1}  # waiting for the window spent no attempt


@pytest.mark.parametrize(
    "value",
    [
        '{"shop eu": {}}',  # not a tenant's name
        '{"shop-eu": {"max_rat": 5}}',  # a typo of an option
        '{"shop-eu": {"max_rate": 0}}',
        '{"shop-eu": {"daily_cap": 2.5}}',
        '{"shop-eu": {"daily_cap": true}}',
        '{"shop-eu": {"configuration_set": "a b"}}',
        '{"shop-eu": {"suppression": "Tenant"}}',  # the scopes are spelt exactly
        '{"shop-eu": {"suppression": null}}',
        '["shop-eu"]',
        "{not json",
        "[" * 300_000,  # deeply nested: refused by its size before it is parsed
    ],
)
def test_the_tenants_setting_is_read_strictly_naming_the_setting(value: str) -> None:
    with pytest.raises(SettingError, match=r"^MAILSPOOL_SES_TENANTS must be a JSON object"):
        Settings.load(environ={"MAILSPOOL_SES_TENANTS": value})


@given(
    st.dictionaries(
        TENANTS,
        st.fixed_dictionaries(
            {},
            optional={
                "configuration_set": TENANTS,
                "max_rate": st.floats(0.001, 1e6),
                "daily_cap": st.integers(1, 10**9),
                "suppression": st.sampled_from(["account", "tenant"]),
            },
        ),
        max_size=5,
    )
)
def test_the_tenants_setting_reads_back_what_it_was_given(given_: dict[str, Any]) -> None:
    loaded = Settings.load(environ={"MAILSPOOL_SES_TENANTS": json.dumps(given_)}).ses_tenants
    assert {
        name: {k: v for k, v in asdict(o).items() if v is not None} for name, o in loaded.items()
    } == {name: {"suppression": "account", **options} for name, options in given_.items()}
    scoped = {name for name, options in given_.items() if options.get("suppression") == "tenant"}
    assert tenant_scoped(loaded) == scoped
