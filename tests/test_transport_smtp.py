"""The SMTP transport against a real aiosmtpd server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mailspool.errors import ConfigurationError, PermanentError, TransientError
from mailspool.transports import Transport, open_transport
from mailspool.transports.smtp import SMTPTransport
from mailspool.transports.smtp_connection import default_ehlo_name
from tests.fixtures.smtp_server import SMTP_PASSWORD, SMTP_USER, SMTPSink, running_smtp_server
from tests.transport_contract import Delivered, TransportContract, simple_message


class TestSMTPTransport(TransportContract):
    """The contract against a server without PIPELINING and one that advertises it."""

    @pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
    def contract_server(self, request: pytest.FixtureRequest) -> Iterator[SMTPSink]:
        with running_smtp_server(pipelining=request.param) as server:
            yield server

    @pytest.fixture
    def transport(self, contract_server: SMTPSink) -> Iterator[Transport]:
        with open_transport(contract_server.url) as transport:
            yield transport

    @pytest.fixture
    def delivered(self, contract_server: SMTPSink) -> Delivered:
        envelopes = lambda: contract_server.envelopes  # noqa: E731
        return lambda: [(e.mail_from, e.rcpt_tos, e.parsed()) for e in envelopes()]


@pytest.fixture
def transport(smtp_server: SMTPSink) -> Iterator[SMTPTransport]:
    transport = SMTPTransport.from_url(smtp_server.url)
    with transport:
        yield transport


# -- connection reuse ----------------------------------------------------------------


def test_ten_sends_use_one_connection(transport: SMTPTransport, smtp_server: SMTPSink) -> None:
    for number in range(10):
        transport.send(simple_message(f"message {number}"))
    assert len(smtp_server.envelopes) == 10
    assert smtp_server.connections == 1
    assert {envelope.connection for envelope in smtp_server.envelopes} == {1}


def test_this_hosts_name_is_looked_up_once_for_every_connection(
    smtp_server: SMTPSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """smtplib finds the name it greets with (a reverse DNS lookup) for each connection it
    opens; the transport finds it once."""
    default_ehlo_name.cache_clear()
    looked_up: list[str] = []
    real = socket.getfqdn

    def counted(name: str = "") -> str:
        looked_up.append(name)
        return real(name)

    monkeypatch.setattr(socket, "getfqdn", counted)
    with SMTPTransport.from_url(smtp_server.url) as transport:
        for number in range(3):
            transport.send(simple_message(f"m{number}"))
            assert smtp_server.drop_connections() == 1  # the next send opens another
    assert smtp_server.connections == 3
    assert len(looked_up) == 1
    default_ehlo_name.cache_clear()


def test_threads_never_open_more_than_max_connections(smtp_server: SMTPSink) -> None:
    smtp_server.slow_down(0.002)  # sends overlap, so the pool is really contended
    with (
        SMTPTransport.from_url(smtp_server.url_with(max_connections="3")) as transport,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        list(pool.map(lambda n: transport.send(simple_message(f"m{n}")), range(24)))
    assert len(smtp_server.envelopes) == 24
    assert 1 <= smtp_server.connections <= 3


def test_idle_connection_dropped_by_the_server_is_replaced(
    transport: SMTPTransport, smtp_server: SMTPSink
) -> None:
    transport.send(simple_message("first"))
    assert smtp_server.drop_connections() == 1
    receipt = transport.send(simple_message("second"))
    assert [str(m["Subject"]) for m in smtp_server.messages] == ["first", "second"]
    assert smtp_server.attempts.count(receipt.message_id) == 1
    assert smtp_server.connections == 2


def test_a_drop_during_data_is_not_resent(transport: SMTPTransport, smtp_server: SMTPSink) -> None:
    transport.send(simple_message("first"))  # the next send reuses this connection
    smtp_server.drop_during_data()
    with pytest.raises(TransientError, match="during DATA") as raised:
        transport.send(simple_message("second"), message_id="<second@mailspool.test>")
    assert smtp_server.attempts == [smtp_server.attempts[0], "<second@mailspool.test>"]
    assert "may have arrived" in str(raised.value)


def test_close_quits_every_pooled_connection(
    transport: SMTPTransport, smtp_server: SMTPSink
) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda n: transport.send(simple_message(f"m{n}")), range(12)))
    opened = smtp_server.connections
    transport.close()
    assert smtp_server.quits == opened
    smtp_server.wait_for_disconnects()
    assert smtp_server.open_connections == 0


def test_a_connection_the_server_refused_an_email_on_carries_the_next(
    transport: SMTPTransport, smtp_server: SMTPSink
) -> None:
    """Every recipient refused: smtplib ends the transaction with RSET, and the session
    goes on (a bulk send meets refused addresses often; a reconnect each would cost)."""
    smtp_server.refuse_recipient("nobody@example.com")
    with pytest.raises(PermanentError):
        transport.send(simple_message(to="nobody@example.com"))
    transport.send(simple_message("next"))
    assert [envelope.connection for envelope in smtp_server.envelopes] == [1]


def test_a_connection_that_timed_out_is_not_reused(smtp_server: SMTPSink) -> None:
    with SMTPTransport.from_url(smtp_server.url_with(timeout="2")) as transport:
        transport.send(simple_message("first"))
        smtp_server.slow_down(3)
        with pytest.raises(TransientError, match="did not answer within 2 s"):
            transport.send(simple_message("too late"))
        smtp_server.slow_down(0)
        transport.send(simple_message("next"))
    assert smtp_server.envelopes[-1].connection > smtp_server.envelopes[0].connection


# -- server answers --------------------------------------------------------------------


def test_451_is_transient_with_the_server_answer(
    transport: SMTPTransport, smtp_server: SMTPSink
) -> None:
    smtp_server.defer_first_attempt()
    message = simple_message()
    with pytest.raises(TransientError) as raised:
        transport.send(message, message_id="<retry-me@mailspool.test>")
    assert "451" in str(raised.value)
    assert "Temporary failure, please try again later" in str(raised.value)
    assert raised.value.response.startswith("451 4.3.0")
    assert smtp_server.envelopes == []
    transport.send(message, message_id="<retry-me@mailspool.test>")  # the worker's retry
    assert [m["Message-ID"] for m in smtp_server.messages] == ["<retry-me@mailspool.test>"]


def test_one_refused_recipient_of_two_is_in_the_receipt(
    transport: SMTPTransport, smtp_server: SMTPSink
) -> None:
    smtp_server.refuse_recipient("gone@example.com")
    receipt = transport.send(simple_message(to=["rcpt@example.com", "gone@example.com"]))
    assert dict(receipt.refused) == {
        "gone@example.com": "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"
    }
    assert [envelope.rcpt_tos for envelope in smtp_server.envelopes] == [("rcpt@example.com",)]


def test_the_only_recipient_refused_is_permanent(
    transport: SMTPTransport, smtp_server: SMTPSink
) -> None:
    smtp_server.refuse_recipient("gone@example.com")
    with pytest.raises(PermanentError, match=r"550 5\.1\.1") as raised:
        transport.send(simple_message(to="gone@example.com"))
    assert "gone@example.com" in str(raised.value)
    assert smtp_server.envelopes == []
    smtp_server.accept_recipient("gone@example.com")  # the mailbox exists now
    transport.send(simple_message(to="gone@example.com"))
    assert [envelope.rcpt_tos for envelope in smtp_server.envelopes] == [("gone@example.com",)]


def test_every_recipient_refused_with_one_4xx_is_transient(
    transport: SMTPTransport, smtp_server: SMTPSink
) -> None:
    smtp_server.refuse_recipient("gone@example.com")
    smtp_server.refuse_recipient("busy@example.com", "450 4.2.1 Mailbox busy, try later")
    with pytest.raises(TransientError, match=r"450 4\.2\.1") as raised:
        transport.send(simple_message(to=["gone@example.com", "busy@example.com"]))
    assert "550 5.1.1" in str(raised.value)


def test_a_message_too_large_is_permanent(transport: SMTPTransport, smtp_server: SMTPSink) -> None:
    smtp_server.limit_size(2000)
    with pytest.raises(PermanentError, match=r"too large: 552 5\.3\.4"):
        transport.send(simple_message(text="x" * 5000))
    assert smtp_server.envelopes == []


def test_non_ascii_domains_are_sent_as_idna(
    transport: SMTPTransport, smtp_server: SMTPSink
) -> None:
    transport.send(simple_message(sender="me@bücher.example", to="you@münchen.example"))
    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "me@xn--bcher-kva.example"
    assert envelope.rcpt_tos == ("you@xn--mnchen-3ya.example",)


# -- network failures ------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_connection_refused_is_transient() -> None:
    with (
        SMTPTransport.from_url(f"smtp://127.0.0.1:{_closed_port()}") as transport,
        pytest.raises(TransientError, match="refused the connection"),
    ):
        transport.send(simple_message())


def test_a_server_that_does_not_answer_in_time_is_transient(smtp_server: SMTPSink) -> None:
    smtp_server.slow_down(2)
    with (
        SMTPTransport.from_url(smtp_server.url_with(timeout="0.2")) as transport,
        pytest.raises(TransientError, match=r"did not answer within 0\.2 s"),
    ):
        transport.send(simple_message())


# -- TLS -----------------------------------------------------------------------------


def test_starttls_is_used_when_offered(smtp_starttls_server: SMTPSink) -> None:
    with open_transport(smtp_starttls_server.url_with(verify="false")) as transport:
        transport.send(simple_message())
    assert [envelope.tls for envelope in smtp_starttls_server.envelopes] == [True]


def test_starttls_verifies_the_certificate_by_default(smtp_starttls_server: SMTPSink) -> None:
    with (
        open_transport(smtp_starttls_server.url) as transport,
        pytest.raises(TransientError, match=r"TLS .* failed: .*certificate"),
    ):
        transport.send(simple_message())
    assert smtp_starttls_server.envelopes == []


def test_the_systems_certificates_load_only_when_a_connection_needs_tls(
    smtp_server: SMTPSink, smtp_starttls_server: SMTPSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CA bundle takes tens of milliseconds to load: a worker whose server offers no
    STARTTLS never loads it, one that does loads it once, at its first TLS connection."""
    made: list[str | None] = []
    real = ssl.create_default_context

    def counted(*args: Any, cafile: str | None = None, **kwargs: Any) -> ssl.SSLContext:
        made.append(cafile)
        return real(*args, cafile=cafile, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counted)
    with open_transport(smtp_server.url) as plain:
        plain.send(simple_message())
    assert made == []
    with open_transport(smtp_starttls_server.url_with(verify="false")) as secured:
        assert made == []
        for number in range(3):
            secured.send(simple_message(f"m{number}"))
            smtp_starttls_server.drop_connections()  # the next send opens another
    assert made == [None]
    assert [envelope.tls for envelope in smtp_starttls_server.envelopes] == [True] * 3


def test_a_trusted_cafile_passes_verification(smtp_starttls_server: SMTPSink) -> None:
    url = smtp_starttls_server.url_with(cafile=smtp_starttls_server.cafile)
    with open_transport(url) as transport:
        transport.send(simple_message())
    assert [envelope.tls for envelope in smtp_starttls_server.envelopes] == [True]


def test_starttls_never_sends_in_clear(smtp_starttls_server: SMTPSink) -> None:
    with open_transport(smtp_starttls_server.url_with(starttls="never")) as transport:
        transport.send(simple_message())
    assert [envelope.tls for envelope in smtp_starttls_server.envelopes] == [False]


def test_starttls_always_refuses_a_server_without_it(smtp_server: SMTPSink) -> None:
    with (
        open_transport(smtp_server.url_with(starttls="always")) as transport,
        pytest.raises(TransientError, match="does not offer STARTTLS") as raised,
    ):
        transport.send(simple_message())
    assert smtp_server.attempts == []
    assert raised.value.__cause__ is None


def test_smtps_is_tls_from_the_start(smtps_server: SMTPSink) -> None:
    with open_transport(smtps_server.url_with(verify="false")) as transport:
        for number in range(3):
            transport.send(simple_message(f"m{number}"))
    assert [(e.tls, e.connection) for e in smtps_server.envelopes] == [(True, 1)] * 3


def test_smtps_reconnects_after_an_idle_drop(smtps_server: SMTPSink) -> None:
    with open_transport(smtps_server.url_with(verify="false")) as transport:
        transport.send(simple_message("first"))
        assert smtps_server.drop_connections() == 1
        transport.send(simple_message("second"))
    assert [(str(m["Subject"])) for m in smtps_server.messages] == ["first", "second"]
    assert len(smtps_server.attempts) == 2
    assert smtps_server.connections == 2


# -- AUTH ----------------------------------------------------------------------------


def test_auth_logs_in_with_the_decoded_credentials(smtp_auth_server: SMTPSink) -> None:
    url = smtp_auth_server.url_with(user=SMTP_USER, password=SMTP_PASSWORD)
    assert "%40" in url  # the password really is percent-encoded in the URL
    with open_transport(url) as transport:
        transport.send(simple_message("one"))
        transport.send(simple_message("two"))
    assert smtp_auth_server.logins == [SMTP_USER]
    assert len(smtp_auth_server.envelopes) == 2


def test_a_password_given_as_an_option_wins_over_the_url(smtp_auth_server: SMTPSink) -> None:
    url = smtp_auth_server.url_with(user=SMTP_USER, password="wrong")
    with open_transport(url, password=SMTP_PASSWORD) as transport:
        transport.send(simple_message())
    assert smtp_auth_server.logins == [SMTP_USER]


def test_a_wrong_password_is_permanent_and_never_shown(
    smtp_auth_server: SMTPSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailspool")
    secret = "Wr0ng-S3cret"
    transport = open_transport(smtp_auth_server.url_with(user=SMTP_USER, password=secret))
    with transport, pytest.raises(PermanentError, match="authentication failed") as raised:
        transport.send(simple_message())
    shown = [str(raised.value), raised.value.response, repr(transport), transport.url, caplog.text]
    assert not [text for text in shown if secret in text]
    assert "535" in str(raised.value)
    assert smtp_auth_server.envelopes == []


def test_no_login_on_a_server_that_requires_one_is_permanent(smtp_auth_server: SMTPSink) -> None:
    with open_transport(smtp_auth_server.url) as transport, pytest.raises(PermanentError) as raised:
        transport.send(simple_message())
    assert "530" in str(raised.value)


# -- configuration -------------------------------------------------------------------


def test_an_unknown_url_parameter_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_transport("smtp://user:hunter2@mail.example.com?tls=yes")
    message = str(raised.value)
    assert "'tls'" in message
    assert "starttls" in message
    assert "max_connections" in message
    assert "hunter2" not in message


def test_the_url_attribute_never_holds_the_password() -> None:
    transport = open_transport("smtp://mailer:hunter2@mail.example.com:587")
    assert transport.url == "smtp://mailer@mail.example.com:587"
    assert "hunter2" not in repr(transport)
