"""One round trip per e-mail: BDAT (RFC 3030 CHUNKING) with the envelope in one write.

Against a real Postfix (``tests/fixtures/postfix.py``: Debian's, a config directory of its
own, STARTTLS, discard transport), and a scripted server (``tests/fixtures/scripted_smtp``)
for the faults Postfix does not make on demand: a connection dropped right after the
content, a 421 in place of the answers, an idle connection closed, a server that offers
CHUNKING without PIPELINING. The rule under test: an e-mail is resent on a new connection
only when the server's answers prove its content was not taken (docs/guarantees.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from benchmarks.latency import distant

from mailspool.errors import ContentUnanswered, PermanentError, TransientError, TransportUnavailable
from mailspool.transports.smtp import SMTPTransport
from mailspool.transports.smtp_pipeline import chunked_group
from tests.fixtures.postfix import Postfix, available, ensure_postfix, running_postfix
from tests.fixtures.scripted_smtp import scripted_server
from tests.fixtures.smtp_server import running_smtp_server
from tests.transport_contract import simple_message

_RESTRICTIONS = """\
smtpd_recipient_restrictions = check_recipient_access inline:{ nobody@example.net=REJECT }, permit_mynetworks, reject
smtpd_end_of_data_restrictions = check_sender_access inline:{ { later@example.com = 451 4.7.1 try later } }
"""


@pytest.fixture(scope="module")
def postfix() -> Iterator[Postfix]:
    """A real Postfix with STARTTLS, a refused recipient and a deferred sender."""
    if not ensure_postfix():
        if available():
            pytest.fail("Postfix could not be installed")
        pytest.skip("a Postfix of its own needs root (its master process)")
    with running_postfix(tls=True, restrictions=_RESTRICTIONS) as server:
        yield server


def _transport(postfix: Postfix, url: str | None = None, **query: str) -> SMTPTransport:
    extra = "".join(f"&{name}={value}" for name, value in query.items())
    return SMTPTransport.from_url(f"{url or postfix.url}?cafile={postfix.cafile}{extra}")


def _session_counts(postfix: Postfix) -> list[dict[str, int]]:
    """The commands of each finished session (``bdat=2/3``: 3), from Postfix's log."""
    sessions = []
    for line in postfix.log().splitlines():
        if "disconnect from" in line:
            found = re.findall(r"(\w+)=(\d+)(?:/(\d+))?", line.partition("disconnect from")[2])
            sessions.append({name: int(total or ok) for name, ok, total in found})
    return sessions


def _last_session(postfix: Postfix, before: int) -> dict[str, int]:
    """The session that ended after ``before`` sessions had: Postfix logs its end once
    the QUIT is answered, so the line may come a moment after ``close`` returns."""
    for _ in range(600):
        sessions = [s for s in _session_counts(postfix)[before:] if "mail" in s]
        if sessions:  # (a session that sent nothing: the readiness probe, logged late)
            return sessions[-1]
        time.sleep(0.05)
    raise AssertionError(f"Postfix logged no end of session: {postfix.log()[-2000:]}")


def test_postfix_takes_each_email_in_one_round_trip_over_starttls(postfix: Postfix) -> None:
    before = len(_session_counts(postfix))
    with distant(postfix.url, 0.0) as (near, turns):
        transport = _transport(postfix, near, max_connections="1")
        try:
            transport.send(simple_message("first", to="a@example.net"))  # opens the session
            turns.count = 0
            for number in range(10):
                receipt = transport.send(simple_message(f"m{number}", to="b@example.net"))
                assert receipt.refused == {}
            assert turns.count == 10  # one write and one answer per e-mail
        finally:
            transport.close()
    last = _last_session(postfix, before)
    assert last["bdat"] == 11
    assert last["starttls"] == 1
    assert "data" not in last


def test_smtps_takes_the_same_one_round_trip_path(postfix: Postfix) -> None:
    before = len(_session_counts(postfix))
    with distant(f"smtp://{postfix.host}:{postfix.smtps_port}", 0.0) as (near, turns):
        port = near.rpartition(":")[2]
        far = f"smtps://127.0.0.1:{port}?cafile={postfix.cafile}&max_connections=1"
        with SMTPTransport.from_url(far) as transport:
            transport.send(simple_message("first", to="a@example.net"))
            turns.count = 0
            for number in range(5):
                transport.send(simple_message(f"m{number}", to="b@example.net"))
            assert turns.count == 5
    last = _last_session(postfix, before)
    assert last["bdat"] == 6
    assert "starttls" not in last


def test_the_chunked_group_and_aiosmtpd_smtps(postfix: Postfix) -> None:
    group = chunked_group("a@example.com", [], ["b@example.net"], [], b"Subject: x\r\n\r\nhi")
    assert group.endswith(b"BDAT 18 LAST\r\nSubject: x\r\n\r\nhi\r\n")
    with running_smtp_server(tls="implicit") as smtps:  # aiosmtpd: no CHUNKING, DATA
        with SMTPTransport.from_url(smtps.url_with(verify="false")) as transport:
            transport.send(simple_message("over smtps"))
        assert [envelope.tls for envelope in smtps.envelopes] == [True]


def test_a_refused_recipient_is_reported_and_the_others_get_the_email(postfix: Postfix) -> None:
    before = len(_session_counts(postfix))
    transport = _transport(postfix)
    try:
        receipt = transport.send(simple_message(to=["nobody@example.net", "c@example.net"]))
        assert list(receipt.refused) == ["nobody@example.net"]
        assert receipt.refused["nobody@example.net"].startswith("554")
        with pytest.raises(PermanentError, match="refused every recipient"):
            transport.send(simple_message(to="nobody@example.net"))
        transport.send(simple_message("after the refusal", to="d@example.net"))
    finally:
        transport.close()
    last = _last_session(postfix, before)
    assert last["mail"] == 3
    assert last["bdat"] == 3


def test_a_4xx_after_the_content_is_transient_and_the_connection_goes_on(
    postfix: Postfix,
) -> None:
    before = len(_session_counts(postfix))
    transport = _transport(postfix)
    try:
        with pytest.raises(TransientError, match=r"451 4\.7\.1 .*try later") as raised:
            transport.send(simple_message(sender="later@example.com", to="e@example.net"))
        assert not isinstance(raised.value, TransportUnavailable)
        transport.send(simple_message("next one", to="f@example.net"))
    finally:
        transport.close()
    last = _last_session(postfix, before)
    assert last["bdat"] == 2
    assert last["rset"] >= 1


def test_a_drop_right_after_the_content_is_not_resent() -> None:
    with scripted_server(["drop"]) as server:
        with (
            SMTPTransport.from_url(server.url) as transport,
            pytest.raises(TransientError, match="may have arrived") as raised,
        ):
            transport.send(simple_message("dropped"))
        assert len(server.contents) == 1
        assert server.connections == 1
    assert any(command.startswith("BDAT") for command in server.commands)
    # no answer came: a counted retry, and no sign for the outage gate that the server is up
    assert isinstance(raised.value, ContentUnanswered)


def test_a_drop_after_the_content_on_a_reused_connection_is_not_resent() -> None:
    with scripted_server(["accept,drop", "accept"]) as server:
        with SMTPTransport.from_url(server.url, max_connections=1) as transport:
            transport.send(simple_message("first"))
            with pytest.raises(TransientError, match="may have arrived"):
                transport.send(simple_message("second"))
        assert [c.count(b"Subject: second") for c in server.contents] == [0, 1]
        assert server.connections == 1


def test_a_421_in_place_of_the_answers_means_not_taken_so_it_is_resent() -> None:
    with scripted_server(["accept,421", "accept"]) as server:
        with SMTPTransport.from_url(server.url, max_connections=1) as transport:
            transport.send(simple_message("first"))
            receipt = transport.send(simple_message("second"))
        assert [c.count(b"Subject: second") for c in server.contents] == [0, 1]
        assert server.connections == 2
        assert receipt.refused == {}


def test_a_421_on_a_new_connection_pauses_the_transport_and_nothing_was_taken() -> None:
    with scripted_server(["421"]) as server:
        with (
            SMTPTransport.from_url(server.url) as transport,
            pytest.raises(TransportUnavailable, match="421"),
        ):
            transport.send(simple_message("refused whole"))
        assert server.contents == []
        assert server.connections == 1


def test_an_idle_connection_the_server_closed_is_replaced_before_sending() -> None:
    with scripted_server(["idle-drop", "accept"]) as server:
        transport = SMTPTransport.from_url(server.url, max_connections=1)
        try:
            transport.send(simple_message("first"))
            _wait_closed_by_server(transport)
            transport.send(simple_message("second"))
        finally:
            transport.close()
        assert [c.count(b"Subject: second") for c in server.contents] == [0, 1]
        assert server.connections == 2


def test_chunking_without_pipelining_sends_data() -> None:
    with scripted_server(["accept"], extensions=("CHUNKING",)) as server:
        with SMTPTransport.from_url(server.url) as transport:
            transport.send(simple_message("plain"))
        verbs = [command.split(" ")[0].upper() for command in server.commands]
    assert "DATA" in verbs
    assert "BDAT" not in verbs


def test_a_server_that_offers_neither_gets_plain_smtp() -> None:
    with scripted_server(["accept"], extensions=("8BITMIME",)) as server:
        with SMTPTransport.from_url(server.url) as transport:
            receipt = transport.send(simple_message("plain", to=["g@example.net", "h@example.net"]))
        verbs = [command.split(" ")[0].upper() for command in server.commands]
    assert receipt.refused == {}
    assert verbs.count("RCPT") == 2
    assert "DATA" in verbs
    assert "BDAT" not in verbs


def test_chunking_can_be_turned_off_in_the_url() -> None:
    with scripted_server(["accept"]) as server:
        with SMTPTransport.from_url(f"{server.url}?chunking=false") as transport:
            transport.send(simple_message("pipelined DATA"))
        verbs = [command.split(" ")[0].upper() for command in server.commands]
    assert "DATA" in verbs
    assert "BDAT" not in verbs


def _wait_closed_by_server(transport: SMTPTransport) -> None:
    """Until the pooled connection sees the server's close (no clock: the socket says)."""
    import select

    connection = transport._idle[0]
    assert connection.sock is not None
    select.select([connection.sock], [], [])  # readable once the server hung up
