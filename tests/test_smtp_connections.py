"""The SMTP transport's pool of connections, as a worker's sender threads use it:
reused, replaced when the server dropped an idle one, never resent after DATA began.

Every test runs against real aiosmtpd servers on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import mailspool
from mailspool.config import Settings
from mailspool.delivery.factory import build_worker, open_delivery_transport
from mailspool.errors import TransientError
from mailspool.stores.file import FileStore
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.local import drain
from tests.fixtures.smtp_senders import sending
from tests.fixtures.smtp_server import SMTPSink
from tests.transport_contract import simple_message


def test_the_event_loop_option_of_earlier_versions_is_accepted_and_ignored(
    smtp_server: SMTPSink,
) -> None:
    with SMTPTransport.from_url(smtp_server.url_with(event_loop="false")) as transport:
        transport.send(simple_message("still sent"))
    assert [str(m["Subject"]) for m in smtp_server.messages] == ["still sent"]


def test_starttls_and_smtps_use_the_same_pool(
    smtp_starttls_server: SMTPSink, smtps_server: SMTPSink
) -> None:
    for server in (smtp_starttls_server, smtps_server):
        with sending(server.url_with(verify="false")) as send:
            for number in range(3):
                send(simple_message(f"over TLS {number}"))
        assert [envelope.tls for envelope in server.envelopes] == [True] * 3
        assert {envelope.connection for envelope in server.envelopes} == {1}


def test_ten_sends_use_one_connection(smtp_server: SMTPSink) -> None:
    with sending(smtp_server.url) as send:
        for number in range(10):
            send(simple_message(f"message {number}"))
    assert len(smtp_server.envelopes) == 10
    assert {envelope.connection for envelope in smtp_server.envelopes} == {1}


def test_an_idle_connection_dropped_by_the_server_is_replaced(smtp_server: SMTPSink) -> None:
    with sending(smtp_server.url) as send:
        send(simple_message("first"))
        assert smtp_server.drop_connections() == 1
        receipt = send(simple_message("second"))
    assert [str(m["Subject"]) for m in smtp_server.messages] == ["first", "second"]
    assert smtp_server.attempts.count(receipt.message_id) == 1


def test_a_drop_during_data_is_not_resent(smtp_server: SMTPSink) -> None:
    with sending(smtp_server.url) as send:
        send(simple_message("first"))
        smtp_server.drop_during_data()
        with pytest.raises(TransientError, match="during DATA") as raised:
            send(simple_message("second"), message_id="<second@mailspool.test>")
    assert smtp_server.attempts[1:] == ["<second@mailspool.test>"]
    assert "may have arrived" in str(raised.value)


def test_a_refused_recipient_leaves_the_connection_reusable(smtp_server: SMTPSink) -> None:
    smtp_server.refuse_recipient("nobody@example.com")
    with sending(smtp_server.url) as send:
        with pytest.raises(mailspool.errors.PermanentError, match="refused every recipient"):
            send(simple_message(to="nobody@example.com"))
        send(simple_message("next"))
    assert [envelope.connection for envelope in smtp_server.envelopes] == [1]


def test_a_server_that_does_not_answer_in_time_is_transient(smtp_server: SMTPSink) -> None:
    with sending(smtp_server.url_with(timeout="0.5")) as send:
        send(simple_message("in time"))
        smtp_server.slow_down(2)
        with pytest.raises(TransientError, match=r"did not answer within 0\.5 s"):
            send(simple_message("too late"))


def test_a_worker_drains_over_at_most_its_concurrency_of_connections(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    smtp_server.slow_down(0.01)  # sends overlap, so the connections are really contended
    store = FileStore(tmp_path / "spool")
    url = smtp_server.url
    settings = Settings.load(store=store.url, transport=url, concurrency=4)
    with mailspool.request(store=store, settings=settings):
        for number in range(60):
            mailspool.send_mail(f"f{number}@example.com", f"note {number}", "<p>hi</p>")
    transport = open_delivery_transport(settings)
    worker = build_worker(settings, store, transport)
    try:
        report = drain(worker)
    finally:
        worker.close()
        transport.close()
    assert report.sent == 60
    assert sorted(e.rcpt_tos[0] for e in smtp_server.envelopes) == sorted(
        f"f{number}@example.com" for number in range(60)
    )
    assert 2 <= smtp_server.connections <= 4
    smtp_server.wait_for_disconnects()
    assert smtp_server.open_connections == 0  # closing the worker QUITs every connection
