"""The whole way round, with real servers: mailspool delivers through Postfix with VERP;
Postfix bounces an unknown user with a DSN to the VERP address, which it delivers into
a Dovecot mailbox; ``mailspool bounces imap --once`` reads it; the address is
suppressed with Postfix's words, ``trace`` shows them, and the next batch goes only to
the good address."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import mailspool
from mailspool.config import Settings
from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.stores.file import FileStore
from tests.fixtures.dovecot import Dovecot
from tests.fixtures.postfix import Postfix

pytestmark = pytest.mark.slow

SECRET = "s3cret-key-of-32-bytes-for-tests!"


def run(spool: Path, postfix: Postfix, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MAILSPOOL_STORE": f"file://{spool}",
        "MAILSPOOL_TRANSPORT": postfix.url,
        "MAILSPOOL_BOUNCE_ADDRESS": "bounces@bounce.test",
        "MAILSPOOL_BOUNCE_SECRET": SECRET,
    }
    return subprocess.run(
        [sys.executable, "-m", "mailspool", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def wait_for(condition: Callable[[], bool], seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def hand_off(spool: Path) -> None:
    settings = Settings.load(store=f"file://{spool}")
    with mailspool.request(settings=settings):
        for to in ("good@shop.test", "unknown@shop.test"):
            mailspool.send_mail(to, "Your order", "Shipped", {"From": "Shop <shop@shop.test>"})


def test_a_postfix_dsn_read_from_dovecot_suppresses_the_unknown_user(
    spool: Path, postfix_server: Postfix, dovecot_server: Dovecot
) -> None:
    hand_off(spool)
    drained = run(spool, postfix_server, "worker", "--drain")
    assert drained.returncode == 0, drained.stderr
    wait_for(lambda: postfix_server.delivered("good") == 1)
    wait_for(lambda: dovecot_server.count("ALL") == 1)  # Postfix's DSN, in the mailbox
    assert "status=bounced" in postfix_server.log()

    read = run(spool, postfix_server, "bounces", "imap", dovecot_server.url, "--once")
    assert read.returncode == 0, read.stderr
    assert "1 message(s): 1 event(s), 1 new, 1 address(es) suppressed, 0 rejected" in read.stdout
    entry = SuppressionList(FileStore(spool)).get("unknown@shop.test")
    assert entry is not None
    assert entry.reason is Reason.BOUNCE
    assert entry.diagnostic == 'unknown user: "unknown@shop.test"'  # Postfix's own words
    assert SuppressionList(FileStore(spool)).get("good@shop.test") is None

    status = json.loads(run(spool, postfix_server, "status", "--json").stdout)
    assert (status["rate_sends"], status["bounce_rate"], status["suppressed"]) == (2, 0.5, 1)

    traced = json.loads(run(spool, postfix_server, "trace", "unknown@shop.test", "--json").stdout)
    [email] = traced
    states = {s["state"]: s["detail"] for s in email["states"]}
    assert list(states)[:2] == ["queued", "sent"]
    assert 'unknown user: "unknown@shop.test"' in states["bounced"]

    hand_off(spool)
    again = run(spool, postfix_server, "worker", "--drain")
    assert again.returncode == 0, again.stderr
    wait_for(lambda: postfix_server.delivered("good") == 2)
    assert postfix_server.log().count("to=<unknown@shop.test>") == 1  # never offered again
    failed = json.loads(run(spool, postfix_server, "failed", "list", "--json").stdout)["failed"]
    assert [f["recipients"] for f in failed] == [["unknown@shop.test"]]
    assert "suppressed (bounce" in failed[0]["reason"]
