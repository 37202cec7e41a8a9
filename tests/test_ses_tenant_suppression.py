"""Suppression per SES tenant (``"suppression": "tenant"`` in ``MAILSPOOL_SES_TENANTS``)
and tenants on the priority path (``TenantName``, the tenant's configuration set, its
counts in ``status --tenants``).

SES runs as moto in server mode; the requests are read on the wire with botocore's
``before-send`` event (``tests.test_ses_tenants.Wire``). The complaints are SES's own
event documents (``tests.ses_events``) with the message tags the transport set, so the
feedback finds the e-mail's batch and, in it, the e-mail's tenant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

import mailspool
from mailspool.cli import cli
from mailspool.config import Settings
from mailspool.delivery.report import BatchStatus
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import PermanentError
from mailspool.feedback import layout as feedback_layout
from mailspool.feedback.events import parse_ses_event
from mailspool.feedback.ingest import ingest
from mailspool.feedback.settings import feedback_options
from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.message import Message
from mailspool.ops.tenants import tenant_counts
from mailspool.spool import batch, layout
from mailspool.spool.ledger import read_entries
from mailspool.spool.records import LedgerState
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from mailspool.stores.open_stores import shared_store
from mailspool.transports.open_transports import close_all, shared_tenant_transport
from mailspool.transports.ses import SESTransport
from tests.fixtures.moto_server import MotoServer
from tests.ses_events import complaint
from tests.test_ses_tenants import SENDER, Wire, priority_ses

ADDRESS = "ana@example.org"
TENANTS = '{"shop-a": {"suppression": "tenant"}, "shop-b": {"suppression": "tenant"}}'
SETTINGS = Settings.load(environ={"MAILSPOOL_SES_TENANTS": TENANTS})


@pytest.fixture
def ses(aws: MotoServer) -> Iterator[SESTransport]:
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    with closing(SESTransport(region="us-east-1")) as transport:
        yield transport


def mail(to: str, tenant: str | None) -> Message:
    return Message(to=(to,), subject="Order", text="Shipped.", sender=SENDER, tenant=tenant)


def deliver(store: MemoryStore, ses: SESTransport, messages: list[Message]) -> str:
    """Queue and deliver ``messages`` in one batch; its id."""
    with mailspool.request(store=store, settings=Settings.load(store="memory:unused")) as scope:
        for message in messages:
            mailspool.send_message(message, priority=False)
    (key,) = scope.keys
    worker = Worker(store, ses, options=WorkerOptions(concurrency=1, default_sender=SENDER))
    try:
        assert worker.deliver(key).status is BatchStatus.FINISHED
    finally:
        worker.close()
    return layout.queued_batch_id(key)


def complain(store: MemoryStore, batch_id: str, index: int, address: str) -> None:
    """SES's complaint about e-mail ``index`` of the batch, tagged as the transport tags it."""
    payload = complaint(f"0100-{batch_id}-{index}", address)
    payload["mail"]["tags"].update({"mailspool-batch": [batch_id], "mailspool-index": [str(index)]})
    ingest(store, [parse_ses_event(payload)], options=feedback_options(SETTINGS))


def outcomes(store: MemoryStore, batch_id: str) -> list[tuple[LedgerState, str | None]]:
    entries = read_entries(store, batch_id)
    return [(entries[i].state, entries[i].reason) for i in sorted(entries)]


def test_a_complaint_for_a_tenant_suppresses_the_address_for_that_tenant_only(
    ses: SESTransport,
) -> None:
    store = MemoryStore()
    first = deliver(store, ses, [mail(ADDRESS, "shop-a")])
    complain(store, first, 0, ADDRESS)
    suppressions = SuppressionList(store, cache_ttl=0)
    assert [e.address for e in suppressions.entries("shop-a")] == [ADDRESS]
    assert list(suppressions.entries()) == []  # not the account's

    wire = Wire(ses._client)
    second = deliver(store, ses, [mail(ADDRESS, "shop-a"), mail(ADDRESS, "shop-b")])
    assert wire.tenants() == ["shop-b"]
    (refused, _), (sent, _) = outcomes(store, second)
    assert (refused, sent) == (LedgerState.FAILED, LedgerState.SENT)
    reason = outcomes(store, second)[0][1] or ""
    assert f"{ADDRESS}: suppressed for tenant shop-a (complaint since" in reason


def test_a_tenant_keeping_the_account_scope_suppresses_for_every_tenant(
    ses: SESTransport,
) -> None:
    store = MemoryStore()
    first = deliver(store, ses, [mail(ADDRESS, "shop-c")])  # not in the setting: account
    complain(store, first, 0, ADDRESS)
    assert [e.address for e in SuppressionList(store).entries()] == [ADDRESS]

    wire = Wire(ses._client)
    second = deliver(store, ses, [mail(ADDRESS, "shop-a"), mail(ADDRESS, None)])
    assert wire.tenants() == []
    assert [state for state, _ in outcomes(store, second)] == [LedgerState.FAILED] * 2


def test_a_complaint_whose_batch_cannot_be_read_suppresses_for_the_account(
    ses: SESTransport,
) -> None:
    store = MemoryStore()
    first = deliver(store, ses, [mail(ADDRESS, "shop-a")])
    store.put(layout.done_key(first), b"{not a batch")  # damaged since: the safe side
    complain(store, first, 0, ADDRESS)
    suppressions = SuppressionList(store)
    assert [e.address for e in suppressions.entries()] == [ADDRESS]
    assert list(suppressions.entries("shop-a")) == []


@pytest.mark.parametrize("tenant", ["../x", ["shop-a"], "a" * 65])
def test_a_tenant_in_the_batch_file_that_is_not_a_name_is_not_used(
    tenant: object, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    data = batch.encode([mail(ADDRESS, "shop-a")], batch_id="b1", default_sender=SENDER)
    document = json.loads(data)
    document["emails"][0]["tenant"] = tenant  # a hostile file: the account's list
    store.put(layout.queue_key("b1"), json.dumps(document).encode())
    complain(store, "b1", 0, ADDRESS)
    assert [e.address for e in SuppressionList(store).entries()] == [ADDRESS]
    assert list(store.keys("suppression/tenant/")) == []
    assert "its tenant is not a tenant's name" in caplog.text


def test_a_priority_email_goes_with_its_tenant_and_its_configuration_set(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    boto3.client("sesv2").create_email_identity(EmailIdentity="example.com")
    tenants = '{"t1": {"configuration_set": "t1-events", "suppression": "tenant"}}'
    monkeypatch.setenv("MAILSPOOL_TRANSPORT", "ses://us-east-1")
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{tmp_path}")
    monkeypatch.setenv("MAILSPOOL_SES_TENANTS", tenants)
    close_all()
    try:
        settings = Settings.load()
        transport = shared_tenant_transport("ses://us-east-1", settings.ses_tenants)
        wire = Wire(transport._client)  # type: ignore[attr-defined]
        for tenant in ("t1", "t2"):
            mailspool.send_mail(
                "a@example.org", "Reset", "x", {"From": SENDER}, priority=True, tenant=tenant
            )
        sent = [(b.get("TenantName"), b.get("ConfigurationSetName")) for _, b in wire.requests]
        assert sent == [("t1", "t1-events"), ("t2", None)]
        counts = tenant_counts(FileStore(tmp_path))  # as status --tenants counts them
        assert {name: c.as_dict() for name, c in counts.items()} == {
            "t1": {"pending": 0, "sent": 1, "failed": 0},
            "t2": {"pending": 0, "sent": 1, "failed": 0},
        }
    finally:
        close_all()


def test_the_priority_screen_refuses_an_address_suppressed_for_its_own_tenant(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with priority_ses(monkeypatch, "priority-screen") as wire:
        store = shared_store("memory:priority-screen")
        SuppressionList(store).add(ADDRESS, Reason.BOUNCE, tenant="t1")
        with pytest.raises(PermanentError, match="suppressed for tenant t1 \\(bounce"):
            reset(tenant="t1")
        reset(tenant="t2")  # another tenant's mail goes
        reset(tenant=None)  # and the account's
        assert wire.tenants() == ["t2", None]


def reset(tenant: str | None) -> None:
    mailspool.send_mail(ADDRESS, "Reset", "x", {"From": SENDER}, priority=True, tenant=tenant)


def test_the_suppression_commands_take_a_tenant(tmp_path_factory: pytest.TempPathFactory) -> None:
    url = f"file://{tmp_path_factory.mktemp('spool')}"
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["suppression", *args, "--store", url])
        assert result.exit_code == 0, result.output
        return result.output

    assert "for tenant shop-a" in run("add", ADDRESS, "--tenant", "shop-a")
    assert ADDRESS in run("list", "--tenant", "shop-a")
    assert ADDRESS not in run("list")
    assert ADDRESS not in run("list", "--tenant", "shop-b")
    assert "was not suppressed" in run("remove", ADDRESS)
    assert f"removed {ADDRESS} for tenant shop-a" in run("remove", ADDRESS, "--tenant", "shop-a")
    bad = runner.invoke(cli, ["suppression", "add", ADDRESS, "--tenant", "../x", "--store", url])
    assert bad.exit_code == 2
    assert "tenant's name" in bad.output


@pytest.mark.parametrize("key", ["suppression/tenant/../x/abc.json", "suppression/tenant/a b/x"])
def test_a_tenant_key_whose_name_is_not_a_tenants_names_none(key: str) -> None:
    assert feedback_layout.tenant_of_key(key) is None
    with pytest.raises(ValueError, match="MAILSPOOL_SES_TENANTS"):
        feedback_layout.tenant_suppression_key("a b", ADDRESS)


class ReadCounting(FileStore):
    """A real file store that counts the objects it reads (the cost of a check)."""

    reads = 0

    def get(self, key: str) -> bytes:
        self.reads += 1
        return super().get(key)


def test_a_tenant_without_entries_of_its_own_costs_no_read_per_recipient(tmp_path: Path) -> None:
    store = ReadCounting(tmp_path)
    suppressions = SuppressionList(store, cache_ttl=0, listing_ttl=3600)
    suppressions.add("someone-else@example.org", Reason.MANUAL)  # the list is not empty
    suppressions.add("b@example.org", Reason.MANUAL, tenant="shop-b")
    store.reads = 0
    for i in range(20):
        assert not suppressions.is_suppressed(f"user{i}@example.org", "shop-a")
    assert store.reads == 20  # the account's key only: shop-a's folder is known empty
    assert suppressions.is_suppressed("b@example.org", "shop-b")
    assert not suppressions.is_suppressed("b@example.org", "shop-a")
