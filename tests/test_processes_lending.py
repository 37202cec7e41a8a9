"""Several delivery processes lend each other their connections (``processes.Lending``):
a lone batch is sent over the whole concurrency, whatever the number of processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mailspool
from mailspool.config import Settings
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.processes import IDLE_AFTER, Lending, Share, board
from tests.fixtures.smtp_server import SMTPSink
from tests.transport_contract import simple_message


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_process_alone_at_work_has_the_whole_concurrency() -> None:
    shared = board(2, 32)
    clock = _Clock()
    mine = Lending(Share(0, 2, shared), 32, clock=clock)
    other = Lending(Share(1, 2, shared), 32, clock=clock)
    assert mine.limit() == 32  # the other process sends nothing
    other.started()
    assert mine.limit() == 16  # both at work: each its part
    other.ended()
    assert mine.limit() == 16  # it may take its next e-mail at once
    clock.now += IDLE_AFTER
    assert mine.limit() == 32  # idle a while: it lends its part


def test_three_processes_share_among_the_busy_ones() -> None:
    shared = board(3, 32)
    clock = _Clock()
    lendings = [Lending(Share(i, 3, shared), 32, clock=clock) for i in range(3)]
    lendings[1].started()
    assert lendings[0].limit() == 16
    lendings[2].started()
    assert lendings[0].limit() == 11 == Share(0, 3).concurrency(32)


class _Fixed:
    """A share that says how many connections, and counts the sends."""

    def __init__(self, limit: int) -> None:
        self.value = limit
        self.sends = 0

    def limit(self) -> int:
        return self.value

    def started(self) -> None:
        self.sends += 1

    def ended(self) -> None:
        pass


def test_a_transport_above_its_new_part_gives_connections_back(smtp_server: SMTPSink) -> None:
    transport = SMTPTransport.from_url(smtp_server.url, max_connections=8)
    share = _Fixed(8)
    transport.share_connections(share)
    try:
        for _ in range(3):  # three idle connections, as three sends at once leave them
            transport._idle.append(transport._open())
        share.value = 2  # another process got work
        transport.send(simple_message("one"))
        assert len(transport._idle) == 2  # the one that sent went back to the server
        share.value = 0  # at least one connection is always allowed
        transport.send(simple_message("two"))
        assert len(transport._idle) == 1
        assert share.sends == 2
    finally:
        transport.close()
    assert len(smtp_server.envelopes) == 2
    smtp_server.wait_for_disconnects()
    assert smtp_server.quits == 3
    assert smtp_server.open_connections == 0


def test_a_lone_small_batch_uses_more_than_one_process_part_of_the_connections(
    spool: Path, smtp_server: SMTPSink
) -> None:
    smtp_server.slow_down(0.02)  # sends overlap, so every sender thread needs a connection
    count = 64
    with mailspool.request(settings=Settings.load(store=f"file://{spool}")):
        for i in range(count):
            mailspool.send_mail(f"user{i}@example.com", f"Note {i}", "<p>Hello</p>")
    result = subprocess.run(
        [sys.executable, "-m", "mailspool", "worker", "--drain", "--processes", "2"],
        env={
            **os.environ,
            "MAILSPOOL_STORE": f"file://{spool}",
            "MAILSPOOL_TRANSPORT": smtp_server.url,
            "MAILSPOOL_CONCURRENCY": "8",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"drained 1 batch(es): {count} sent, 0 failed" in result.stdout
    assert len({r for e in smtp_server.envelopes for r in e.rcpt_tos}) == count
    # one process's part would be 4; the other process, with nothing to send, lent its 4
    assert 4 < smtp_server.connections <= 8


def test_the_sends_in_flight_never_pass_the_concurrency_across_processes() -> None:
    shared = board(2, 3)
    first = Lending(Share(0, 2, shared), 3)
    second = Lending(Share(1, 2, shared), 3)
    first.started()
    first.started()  # alone, it may take the whole concurrency
    second.started()  # the last token
    assert not shared.tokens.acquire(block=False)  # a fourth send would wait
    first.ended()
    assert shared.tokens.acquire(block=False)
    shared.tokens.release()


def test_the_sends_of_a_process_killed_alone_are_given_back_for_it() -> None:
    shared = board(2, 2)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process now
    for _ in range(2):  # it held every token when it died
        assert shared.tokens.acquire(block=False)
    shared.sends[0], shared.sends[2] = 2, dead.pid
    survivor = Lending(Share(1, 2, shared), 2)
    survivor.started()  # waits, sees the holder gone, takes a token freed for it
    assert shared.sends[0] == 0
    survivor.ended()
