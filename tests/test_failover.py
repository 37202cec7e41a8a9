"""A failover chain moves an e-mail on only when a member provably took nothing, and the
ledger says where an e-mail went and where it may have gone twice.

Real aiosmtpd servers for every SMTP case (stopped, answering 421/454, TLS that cannot
be verified, dropping the connection after the content, refusing with a 5xx); the
member that stands for SES paused or throttling is a MemoryTransport told to raise
those errors, since neither moto nor any server here can pause an account or throttle;
SES that takes over from a relay is a moto server.
The breaker's retry period runs on a clock the test moves.
"""

from __future__ import annotations

import collections
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

import mailspool
from mailspool.cli import cli
from mailspool.config import Settings
from mailspool.delivery.factory import build_worker, open_delivery_transport
from mailspool.errors import (
    ContentUnanswered,
    InvalidMessage,
    PermanentError,
    SendingPaused,
    TransientError,
    TransportUnavailable,
)
from mailspool.feedback.trace import trace_address, trace_message
from mailspool.spool import layout
from mailspool.spool.ledger import read_entries
from mailspool.spool.records import LedgerEntry, LedgerState, decode_entries, encode_entries
from mailspool.stores.file import FileStore
from mailspool.transports import open_transport
from mailspool.transports.failover import Breaker, FailoverTransport
from mailspool.transports.memory import MemoryTransport
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.local import drain
from mailspool.web import Dashboard
from mailspool.web.http import Request
from mailspool.web.metrics import SendMetrics
from tests.clock import Clock
from tests.fixtures.faulty_relay import faulty_relay
from tests.fixtures.moto_server import MotoServer
from tests.fixtures.smtp_server import SMTPSink
from tests.test_outage import drain_through_outage
from tests.transport_contract import simple_message


def _stopped_url() -> str:
    """The URL of a server that was there and is gone: connection refused."""
    server = SMTPSink().start()
    url = server.url
    server.stop()
    return url


def _chain(*members: str, **options: object) -> FailoverTransport:
    transport = open_transport(f"failover({' '.join(members)})", **options)
    assert isinstance(transport, FailoverTransport)
    return transport


# -- what moves an e-mail on, and what does not -------------------------------------


def test_connection_refused_moves_on(smtp_server: SMTPSink) -> None:
    with _chain(_stopped_url(), smtp_server.url) as chain:
        receipt = chain.send(simple_message())
    assert receipt.via == smtp_server.url
    assert receipt.unanswered == ()
    assert len(smtp_server.envelopes) == 1


@pytest.mark.parametrize("answer", ["421 4.3.2 shutting down", "454 4.7.0 try again later"])
def test_421_and_454_before_the_content_move_on(answer: str) -> None:
    with SMTPSink() as first, SMTPSink() as second:
        first.refuse_recipient("rcpt@example.com", answer)
        with _chain(first.url, second.url) as chain:
            receipt = chain.send(simple_message())
        assert receipt.via == second.url
        assert first.attempts == []  # no content reached the first
        assert len(second.envelopes) == 1


def test_a_tls_failure_moves_on(smtp_starttls_server: SMTPSink, smtp_server: SMTPSink) -> None:
    unverifiable = smtp_starttls_server.url_with(starttls="always")  # self-signed, no cafile
    with _chain(unverifiable, smtp_server.url) as chain:
        receipt = chain.send(simple_message())
    assert receipt.via == smtp_server.url
    assert smtp_starttls_server.envelopes == []


@pytest.mark.parametrize(
    "error",
    [
        SendingPaused("SendingPausedException: sending is paused for this account"),
        SendingPaused("AccountSuspendedException: account suspended"),
        TransportUnavailable("ThrottlingException: Maximum sending rate exceeded"),
    ],
)
def test_ses_paused_suspended_or_throttling_moves_on(
    error: TransientError, smtp_server: SMTPSink
) -> None:
    """A stub stands for SES: moto cannot pause an account or throttle."""
    ses = MemoryTransport()
    ses.fail_next(error)
    with FailoverTransport([ses, SMTPTransport.from_url(smtp_server.url)]) as chain:
        receipt = chain.send(simple_message())
    assert receipt.via == smtp_server.url
    assert ses.outbox == []


def test_an_smtp_relay_down_moves_on_to_ses(aws: MotoServer) -> None:
    """The second member is SES in a moto server: the e-mail leaves through its API."""
    boto3.client("sesv2", region_name="us-east-1").create_email_identity(
        EmailIdentity="example.com"
    )
    with _chain(_stopped_url(), "ses://us-east-1") as chain:
        receipt = chain.send(simple_message())
    assert receipt.via == "ses://us-east-1"
    [sent] = aws.ses_messages()
    assert "rcpt@example.com" in str(sent["destinations"])


def test_a_drop_after_the_content_does_not_move_on_and_is_remembered(
    smtp_server: SMTPSink,
) -> None:
    with SMTPSink() as second:
        smtp_server.drop_during_data()
        with _chain(smtp_server.url, second.url) as chain:
            message = simple_message()
            with pytest.raises(ContentUnanswered):
                chain.send(message, message_id="<b1.0@example.com>")
            assert second.envelopes == []
            assert not chain.members[0].breaker.is_open  # no proof that it is down
            smtp_server.drop_during_data(False)
            receipt = chain.send(message, message_id="<b1.0@example.com>")
        assert receipt.via == smtp_server.url
        assert receipt.unanswered == (smtp_server.url,)  # the retry may be a duplicate


@pytest.mark.parametrize("fault", ["5xx", "4xx"])
def test_an_answer_after_the_content_does_not_move_on(fault: str, smtp_server: SMTPSink) -> None:
    with SMTPSink() as second:
        if fault == "5xx":
            smtp_server.limit_size(10)
        else:
            smtp_server.defer_first_attempt()
        with _chain(smtp_server.url, second.url) as chain:
            expected = PermanentError if fault == "5xx" else TransientError
            with pytest.raises(expected) as raised:
                chain.send(simple_message())
            assert not isinstance(raised.value, TransportUnavailable)
            assert not chain.members[0].breaker.is_open
        assert second.envelopes == []


def test_when_no_member_takes_it_the_chain_is_one_transport_down() -> None:
    with (
        _chain(_stopped_url(), _stopped_url()) as chain,
        pytest.raises(TransportUnavailable, match="no transport of failover") as raised,
    ):
        chain.send(simple_message())
    assert "refused the connection" in raised.value.response
    first, second = MemoryTransport(), MemoryTransport()
    first.fail_next(SendingPaused("SendingPausedException: paused"))
    second.fail_next(SendingPaused("AccountSuspendedException: suspended"))
    with pytest.raises(SendingPaused):  # every member paused: the batch stops, as with SES
        FailoverTransport([first, second]).send(simple_message())


# -- the breaker --------------------------------------------------------------------


def test_the_breaker_skips_a_member_for_its_retry_period_then_probes_once() -> None:
    clock = Clock()
    with SMTPSink() as first, SMTPSink() as second:
        first.refuse_recipient("rcpt@example.com", "421 4.3.2 down for maintenance")
        with _chain(first.url, second.url, retry_period=60.0, clock=clock) as chain:
            assert chain.send(simple_message()).via == second.url
            assert first.connections == 1
            clock.now = 59.0
            assert chain.send(simple_message()).via == second.url
            assert first.connections == 1  # skipped: open
            clock.now = 60.0
            assert chain.send(simple_message()).via == second.url
            assert first.connections == 2  # half-open: one probe, refused again
            assert chain.members[0].breaker.is_open
            first.accept_recipient("rcpt@example.com")
            clock.now = 119.0
            assert chain.send(simple_message()).via == second.url
            clock.now = 120.0
            assert chain.send(simple_message()).via == first.url  # the probe is taken
            assert not chain.members[0].breaker.is_open
            assert chain.send(simple_message()).via == first.url  # closed


def test_a_half_open_member_admits_one_probe_at_a_time() -> None:
    clock = Clock()
    breaker = Breaker(10.0, clock)
    assert breaker.admits()
    assert breaker.failed(TransportUnavailable("down"))
    assert not breaker.failed(TransportUnavailable("still down"))  # opened once
    clock.now = 10.0
    assert breaker.admits()
    assert not breaker.admits()  # another thread while the probe is out
    breaker.answered()
    assert breaker.admits()


def test_a_probe_that_found_the_email_unsendable_lets_the_next_one_probe() -> None:
    """MemoryTransports told to raise: a member down, then one refusing the e-mail
    before sending it (as SES does a non-ASCII local part)."""
    clock = Clock()
    first, second = MemoryTransport("first"), MemoryTransport("second")
    chain = FailoverTransport([first, second], retry_period=10.0, clock=clock)
    first.fail_next(TransportUnavailable("refused"))
    chain.send(simple_message())
    clock.now = 10.0
    first.fail_next(InvalidMessage("no SMTPUTF8", field="to"))
    with pytest.raises(InvalidMessage):
        chain.send(simple_message())
    assert chain.send(simple_message()).via == first.url  # probed at once, and back
    assert len(first.outbox) == 1


# -- the ledger, trace, metrics, the worker -----------------------------------------


def test_ledger_entries_keep_via_and_unanswered_and_read_hostile_ones_as_absent() -> None:
    entry = LedgerEntry.sent(3, "<id>", 2, via="smtp://b:25", unanswered=["smtp://a:25"])
    [read] = decode_entries(encode_entries([entry]))
    assert read == entry
    assert LedgerEntry.sent(3, "<id>", 1).to_json() == {"i": 3, "s": "sent", "id": "<id>", "a": 1}
    odd = LedgerEntry.from_json({"i": 1, "s": "sent", "via": 7, "unanswered": [1, "x"]})
    assert odd is not None
    assert odd.via is None
    assert odd.unanswered is None


def _fault(number: int) -> str | None:
    """A third of the e-mails fail at the first relay, half of those after the content."""
    if number % 3:
        return None
    return "after" if number % 6 == 0 else "before"


def test_a_fault_run_delivers_each_email_once_or_twice_where_the_ledger_says(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    count = 60
    store = FileStore(tmp_path / "spool")
    with faulty_relay(_fault) as first:
        # retry_period=0: every e-mail tries the first relay, so a third of them fail there
        chain = f"failover({first.url} {smtp_server.url})?retry_period=0"
        settings = Settings.load(
            store=store.url, transport=chain, retry_base=0.01, max_attempts=3, concurrency=4
        )
        with mailspool.request(store=store, settings=settings):
            for number in range(count):
                mailspool.send_mail(f"user{number}@example.com", f"n{number}", "<p>hi</p>")
        transport = open_delivery_transport(settings)
        worker = build_worker(settings, store, transport)
        metrics = SendMetrics(CollectorRegistry())
        worker.steps.append(metrics)
        try:
            report = drain(worker)
        finally:
            worker.close()
            transport.close()
        at_first = list(first.received)
        faulted = dict(first.faulted)
    assert report.sent == count
    assert not list(store.list(layout.FAILED))
    arrived = collections.Counter(
        [*at_first, *(r for e in smtp_server.envelopes for r in e.rcpt_tos)]
    )
    [batch_id] = [layout.batch_id_from_key(key) for key in store.keys(layout.DONE)]
    entries = read_entries(store, batch_id)
    for number in range(count):
        entry = entries[number]
        assert entry.state is LedgerState.SENT
        times = arrived[f"user{number}@example.com"]
        assert times == (2 if entry.unanswered else 1), (number, times, entry)
        if faulted.get(number) == "before":
            assert entry.via == smtp_server.url
            assert not entry.unanswered
        elif faulted.get(number) == "after":
            assert entry.unanswered == (first.url,)
        else:
            assert entry.via == first.url
    assert sorted(faulted) == [n for n in range(count) if n % 3 == 0]
    via = {
        s.labels["transport"]: s.value
        for s in metrics.sent_via.collect()[0].samples
        if s.name.endswith("_total")
    }
    assert via == {first.url: count - count // 6, smtp_server.url: count // 6}
    [unanswered] = [
        s.value for s in metrics.unanswered.collect()[0].samples if s.name.endswith("_total")
    ]
    assert unanswered == count // 6  # the "after" ones, sent again to the first

    [ambiguous] = trace_message(store, f"<{batch_id}.0@example.com>")
    [sent] = [step for step in ambiguous.steps if step.state == "sent"]
    assert f"via {first.url}" in sent.detail
    assert f"may also have arrived via {first.url}" in sent.detail
    [moved] = trace_address(store, "user3@example.com")
    assert f"via {smtp_server.url}" in next(s.detail for s in moved.steps if s.state == "sent")
    printed = CliRunner().invoke(
        cli, ["trace", "user6@example.com", "--store", store.url], catch_exceptions=False
    )
    assert f"via {first.url}; may also have arrived via {first.url}" in printed.output
    page = Dashboard(store, public={}).handle(
        Request("GET", "/trace", query="q=user3%40example.com")
    )
    assert f"via {smtp_server.url}" in page.body.decode()


def test_a_chain_wholly_down_pauses_the_worker_and_spends_no_attempt(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    store = FileStore(tmp_path / "spool")
    chain = f"failover({_stopped_url()} {smtp_server.url})?retry_period=0"
    settings = Settings.load(store=store.url, transport=chain, retry_base=0.01, max_attempts=1)
    with mailspool.request(store=store, settings=settings):
        for number in range(5):
            mailspool.send_mail(f"user{number}@example.com", "n", "<p>hi</p>")
    report = drain_through_outage(settings, store, smtp_server, 3)  # more than max_attempts
    assert report.sent == 5
    assert not list(store.list(layout.FAILED))


def test_a_priority_send_fails_over_and_trace_names_the_transport(
    spool: Path, smtp_server: SMTPSink
) -> None:
    chain = f"failover({_stopped_url()} {smtp_server.url})"
    settings = Settings.load(store=f"file://{spool}", priority_transport=chain)
    with mailspool.request(settings=settings):
        sent = mailspool.send_mail("reset@example.com", "Reset", "<p>link</p>", priority=True)
    assert sent is True
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [("reset@example.com",)]
    [traced] = trace_address(FileStore(spool), "reset@example.com")
    [step] = [s for s in traced.steps if s.state == "sent"]
    assert step.detail.endswith(f"via {smtp_server.url}")
