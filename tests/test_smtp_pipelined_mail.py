"""One round trip per e-mail without CHUNKING: the next e-mail's MAIL FROM, RCPT TO and
DATA pipelined behind the current content (RFC 2920), over a run of e-mails that one
connection carries (``SMTPTransport.send_bulk``).

Against a real Postfix (``tests/fixtures/postfix.py``) with three listeners of one
server: as it comes (CHUNKING and PIPELINING: BDAT), without CHUNKING (the pipelined next
MAIL FROM) and without either (plain SMTP); each case of the issue on the first two:
a refused recipient, a 4xx after the content, then a whole drain. A connection dropped
right after the content is a fault Postfix does not make on demand: the scripted server
(``tests/fixtures/scripted_smtp``) makes it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.latency import distant
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mailspool
from mailspool.config import Settings
from mailspool.delivery.bulk import run_size
from mailspool.delivery.factory import build_worker, open_delivery_transport
from mailspool.errors import ContentUnanswered, PermanentError, TransientError, TransportUnavailable
from mailspool.message import Message
from mailspool.stores.file import FileStore
from mailspool.transports.base import BulkEntry, BulkResult, Receipt
from mailspool.transports.smtp import SMTPTransport
from mailspool.transports.smtp_pipeline import Following, PipeliningSMTP
from mailspool.triggers.local import drain
from tests.fixtures.postfix import Postfix, ensure_postfix, running_postfix
from tests.fixtures.scripted_smtp import scripted_server
from tests.strategies import messages
from tests.transport_contract import simple_message

_RESTRICTIONS = """\
smtpd_recipient_restrictions = check_recipient_access inline:{ nobody@example.net=REJECT }, permit_mynetworks, reject
smtpd_end_of_data_restrictions = check_sender_access inline:{ { later@example.com = 451 4.7.1 try later } }
"""

_VARIANTS = {
    "no-chunking": "-o smtpd_discard_ehlo_keywords=chunking",
    "neither": "-o smtpd_discard_ehlo_keywords=chunking,pipelining",
}


@pytest.fixture(scope="module")
def postfix() -> Iterator[Postfix]:
    """A real Postfix with STARTTLS, a refused recipient and a deferred sender."""
    if not ensure_postfix():
        pytest.fail("Postfix is not installed and cannot be (apt-get install postfix as root)")
    with running_postfix(tls=True, restrictions=_RESTRICTIONS, variants=_VARIANTS) as server:
        yield server


def _url(postfix: Postfix, listener: str) -> str:
    port = postfix.port if listener == "chunking" else postfix.ports[listener]
    return f"smtp://{postfix.host}:{port}"


def _transport(postfix: Postfix, url: str) -> SMTPTransport:
    return SMTPTransport.from_url(f"{url}?cafile={postfix.cafile}&max_connections=1")


def _run(transport: SMTPTransport, *messages: Message) -> list[BulkResult]:
    """A run over one connection, each e-mail answered in turn as its answer comes."""
    answers: list[tuple[int, BulkResult]] = []
    transport.send_each([BulkEntry(m) for m in messages], lambda p, r: answers.append((p, r)))
    assert [position for position, _ in answers] == list(range(len(messages)))
    return [result for _, result in answers]


def _sessions(postfix: Postfix) -> list[dict[str, int]]:
    """The commands of each finished session that sent mail (``data=2/3``: 3)."""
    sessions = []
    for line in postfix.log().splitlines():
        if "disconnect from" in line:
            found = re.findall(r"(\w+)=(\d+)(?:/(\d+))?", line.partition("disconnect from")[2])
            counts = {name: int(total or ok) for name, ok, total in found}
            if "mail" in counts:
                sessions.append(counts)
    return sessions


def _session_after(postfix: Postfix, before: int) -> dict[str, int]:
    """The one session that ended after ``before`` had: Postfix logs its end once QUIT
    is answered, a moment after ``close`` returns (a wait for the log, not timed)."""
    for _ in range(600):
        sessions = _sessions(postfix)[before:]
        if sessions:
            assert len(sessions) == 1, sessions
            return sessions[0]
        time.sleep(0.05)
    raise AssertionError(f"Postfix logged no end of session: {postfix.log()[-2000:]}")


@pytest.mark.parametrize(
    ("listener", "verb", "turns"), [("chunking", "bdat", 10), ("no-chunking", "data", 11)]
)
def test_a_run_of_ten_takes_one_round_trip_per_email(
    postfix: Postfix, listener: str, verb: str, turns: int
) -> None:
    """BDAT: one write per e-mail; DATA: the first envelope, then each content with the
    next envelope behind it, the last content alone."""
    before = len(_sessions(postfix))
    with distant(_url(postfix, listener), 0.0) as (near, seen):
        transport = _transport(postfix, near)
        try:
            transport.send(simple_message("opens the session", to="a@example.net"))
            seen.count = 0
            results = _run(
                transport, *(simple_message(f"m{n}", to="b@example.net") for n in range(10))
            )
            assert seen.count == turns
        finally:
            transport.close()
    assert all(isinstance(r, Receipt) and not r.refused for r in results), results
    session = _session_after(postfix, before)
    assert session[verb] == 11
    assert session["mail"] == 11
    assert session["starttls"] == 1
    assert ("bdat" if verb == "data" else "data") not in session


@pytest.mark.parametrize("listener", ["chunking", "no-chunking"])
def test_refused_recipients_are_told_to_their_own_email(postfix: Postfix, listener: str) -> None:
    before = len(_sessions(postfix))
    transport = _transport(postfix, _url(postfix, listener))
    try:
        first, partly, refused, after = _run(
            transport,
            simple_message("first", to="c@example.net"),
            simple_message("partly", to=["nobody@example.net", "d@example.net"]),
            simple_message("refused", to="nobody@example.net"),
            simple_message("after the refusal", to="e@example.net"),
        )
    finally:
        transport.close()
    assert isinstance(first, Receipt)
    assert not first.refused
    assert isinstance(partly, Receipt)
    assert list(partly.refused) == ["nobody@example.net"]
    assert partly.refused["nobody@example.net"].startswith("554")
    assert isinstance(refused, PermanentError)
    assert "refused every recipient" in str(refused)
    assert isinstance(after, Receipt)
    assert not after.refused
    session = _session_after(postfix, before)  # one connection carried all four
    assert session["mail"] == 4


@pytest.mark.parametrize("listener", ["chunking", "no-chunking"])
def test_a_4xx_after_the_content_is_that_emails_and_the_run_goes_on(
    postfix: Postfix, listener: str
) -> None:
    before = len(_sessions(postfix))
    transport = _transport(postfix, _url(postfix, listener))
    try:
        first, deferred, after = _run(
            transport,
            simple_message("first", to="f@example.net"),
            simple_message("deferred", sender="later@example.com", to="g@example.net"),
            simple_message("after the 451", to="h@example.net"),
        )
    finally:
        transport.close()
    assert isinstance(first, Receipt)
    assert isinstance(deferred, TransientError)
    assert not isinstance(deferred, TransportUnavailable | ContentUnanswered)
    assert re.search(r"451 4\.7\.1 .*try later", str(deferred))
    assert isinstance(after, Receipt)
    session = _session_after(postfix, before)
    assert session["mail"] == 3
    if listener == "no-chunking":  # RSET went before each envelope behind a content
        assert session["rset"] == 2


def test_a_server_that_offers_neither_gets_plain_smtp(postfix: Postfix) -> None:
    before = len(_sessions(postfix))
    with distant(_url(postfix, "neither"), 0.0) as (near, seen):
        transport = _transport(postfix, near)
        try:
            transport.send(simple_message("opens the session", to="a@example.net"))
            seen.count = 0
            results = _run(
                transport, *(simple_message(f"m{n}", to="b@example.net") for n in range(3))
            )
            assert seen.count == 3 * 4  # MAIL FROM, RCPT TO, DATA, the content: each alone
        finally:
            transport.close()
    assert all(isinstance(r, Receipt) for r in results)
    session = _session_after(postfix, before)
    assert session["data"] == 4
    assert "bdat" not in session


def test_a_drain_through_postfix_without_chunking_sends_runs(
    postfix: Postfix, tmp_path: Path
) -> None:
    """40 e-mails, 4 senders: runs of 10, each over one connection, all sent once."""
    store = FileStore(tmp_path / "spool")
    with mailspool.request(settings=Settings.load(store=store.url)):
        for number in range(40):
            mailspool.send_mail(f"f{number}@example.net", f"note {number}", "<p>hi</p>")
    before = len(_sessions(postfix))
    url = f"{_url(postfix, 'no-chunking')}?cafile={postfix.cafile}"
    settings = Settings.load(store=store.url, transport=url, concurrency=4)
    with open_delivery_transport(settings) as transport:
        worker = build_worker(settings, store, transport)
        try:
            report = drain(worker)
        finally:
            worker.close()
    assert (report.sent, report.failed) == (40, 0)
    sessions: list[dict[str, int]] = []
    for _ in range(600):  # the sessions' ends, logged a moment after QUIT
        sessions = _sessions(postfix)[before:]
        if sum(s["data"] for s in sessions) >= 40:
            break
        time.sleep(0.05)
    assert sum(s["data"] for s in sessions) == 40
    assert len(sessions) <= 4


def test_a_drop_right_after_the_content_loses_only_that_email() -> None:
    """The content of the second e-mail left with the third's MAIL FROM behind it, then
    the server hung up without a word (scripted: Postfix does not do it on demand). The
    second "may have arrived": not resent; the third's content never left: it goes on
    a new connection."""
    with scripted_server(["accept,drop", "accept"], extensions=("PIPELINING",)) as server:
        with SMTPTransport.from_url(server.url, max_connections=1) as transport:
            first, dropped, third = _run(
                transport,
                simple_message("first"),
                simple_message("second"),
                simple_message("third"),
            )
        contents = list(server.contents)
    assert isinstance(first, Receipt)
    assert isinstance(dropped, ContentUnanswered)
    assert "may have arrived" in str(dropped)
    assert isinstance(third, Receipt)
    assert [
        sum(c.count(f"Subject: {s}".encode()) for c in contents) for s in ("second", "third")
    ] == [1, 1]
    assert server.connections == 2
    # the third's MAIL FROM went behind the second's content, unanswered, on the first
    assert sum(c.upper().startswith("DATA") for c in server.commands) == 3


def test_the_rest_of_a_run_waits_when_the_server_is_gone() -> None:
    """Once a connection cannot be had, the run's other e-mails are not tried."""
    with scripted_server(["accept"], extensions=("PIPELINING",)) as server:
        url = server.url
    transport = SMTPTransport.from_url(url, max_connections=1)
    results = _run(transport, simple_message("one"), simple_message("two"))
    assert all(isinstance(r, TransportUnavailable) for r in results)
    assert results[0] is results[1]


def _wire(extensions: tuple[str, ...], emails: list[Message]) -> tuple[list[str], list[bytes]]:
    """The envelope commands and the contents a scripted server received for a run."""
    with scripted_server(["accept"], extensions=extensions) as server:
        with SMTPTransport.from_url(server.url, max_connections=1) as transport:
            entries = [BulkEntry(m, f"<n{i}@example.com>") for i, m in enumerate(emails)]
            transport.send_each(entries, lambda _, result: None)
        commands = [c for c in server.commands if c.split(" ")[0].upper() in ("MAIL", "RCPT")]
        dated = re.compile(rb"^Date: [^\r\n]*\r\n", re.MULTILINE)  # the moment it was rendered
        return commands, [dated.sub(b"", content) for content in server.contents]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(messages(max_recipients=3).filter(lambda m: m.sender), min_size=1, max_size=4))
def test_a_pipelined_run_puts_on_the_wire_what_plain_smtp_does(emails: list[Message]) -> None:
    """Whatever the e-mails (dots at line starts, many recipients), a run with each
    envelope behind the previous content gives the server the same envelopes and the
    same contents, in the same order, as plain SMTP one command at a time."""
    assert _wire(("PIPELINING",), emails) == _wire(("8BITMIME",), emails)


def test_a_next_envelope_that_cannot_be_written_is_not_sent_ahead() -> None:
    """A next sender that cannot be written (not ASCII, without SMTPUTF8) fails that
    e-mail on its own turn, never the one whose content is being sent."""
    with scripted_server(["accept"], extensions=("PIPELINING",)) as server:
        connection = PipeliningSMTP(server.host, server.port)
        try:
            refused = connection.sendmail(
                "a@example.com",
                ["b@example.net"],
                b"Subject: x\r\n\r\nhi\r\n",
                following=lambda: Following("jürgen@example.com", ["c@example.net"], b"x"),
            )
            assert refused == {}
            assert connection.sent_ahead is None
        finally:
            connection.quit()
    assert [c.split(" ")[0].upper() for c in server.commands] == [
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "QUIT",
    ]


@given(st.integers(1, 20000), st.integers(1, 128), st.integers(1, 50))
def test_runs_share_a_batch_in_as_few_even_rounds_as_allowed(
    count: int, senders: int, most: int
) -> None:
    size = run_size(count, senders, most)
    assert 1 <= size <= most
    rounds = math.ceil(math.ceil(count / size) / senders)  # the calls in rounds of senders
    assert rounds == math.ceil(count / (senders * most))  # as few as ``most`` allows
    # the busiest sender has less than a round's worth more than an even share
    assert size * rounds - math.ceil(count / senders) < rounds


class _Ordered(PipeliningSMTP):
    """Notes when the content starts to travel (``begin_data``), to order it against
    the making ready of the next e-mail."""

    def __init__(self, host: str, port: int) -> None:
        self.events: list[str] = []
        super().__init__(host, port)

    def begin_data(self) -> None:
        self.events.append("content")


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        # the next envelope goes with this content: ready before it is written
        (("PIPELINING",), ["next ready", "content"]),
        # BDAT, or no PIPELINING: ready once the content is written, while its answer travels
        (("PIPELINING", "CHUNKING"), ["content", "next ready"]),
        ((), ["content", "next ready"]),
    ],
)
def test_the_next_email_is_made_ready_while_the_answer_travels_where_it_can(
    extensions: tuple[str, ...], expected: list[str]
) -> None:
    with scripted_server(["accept"], extensions=extensions) as server:
        connection = _Ordered(server.host, server.port)
        try:

            def ready() -> Following:
                connection.events.append("next ready")
                return Following("c@example.com", ["d@example.net"], b"Subject: y\r\n\r\nho\r\n")

            refused = connection.sendmail(
                "a@example.com", ["b@example.net"], b"Subject: x\r\n\r\nhi\r\n", following=ready
            )
            assert refused == {}
            assert connection.events == expected
        finally:
            connection.close()
