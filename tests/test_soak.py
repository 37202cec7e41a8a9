"""A seeded soak: a producer process writes requests while three worker processes deliver
them from one spool and are killed with SIGKILL and restarted at seeded moments. Then
one drain. Every e-mail arrives, duplicates stay within kills x 2 x concurrency, and
``status`` adds up. Bounded: the producer's requests are fixed, the chaos stops when
they are written, and every wait has a deadline (about a minute in all on 2 cores).
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.fixtures.smtp_server import SMTPSink
from tests.test_worker_e2e import status, wait_for, worker_env

pytestmark = pytest.mark.slow

SEED = 1414
WORKERS = 3
CONCURRENCY = 4
REQUESTS = 120

# The producer: REQUESTS request scopes of 1 to 40 e-mails, a seeded pause between them;
# each address it accepted is written to a file once its scope has ended.
PRODUCER = textwrap.dedent(
    """
    import random, sys, time
    import mailspool
    from mailspool.config import Settings

    spool, seed, requests, sent_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rng = random.Random(seed)
    settings = Settings.load(store=f"file://{spool}")
    with open(sent_file, "w") as accepted:
        for r in range(requests):
            addresses = [f"r{r}.{i}@example.com" for i in range(rng.randint(1, 40))]
            with mailspool.request(settings=settings):
                for address in addresses:
                    mailspool.send_mail(address, f"note {r}", "<p>hello</p>")
            accepted.write("".join(a + "\\n" for a in addresses))
            accepted.flush()
            time.sleep(rng.uniform(0, 0.15))
    """
)


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "mailspool", "worker", "--poll-interval", "0.05"]
    return subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)


def test_workers_killed_at_random_lose_nothing(tmp_path: Path, smtp_server: SMTPSink) -> None:
    rng = random.Random(SEED)
    spool, accepted = tmp_path / "spool", tmp_path / "accepted.txt"
    env = worker_env(spool, smtp_server) | {"MAILSPOOL_CONCURRENCY": str(CONCURRENCY)}
    smtp_server.slow_down(0.002)  # a distant server: kills land mid-batch
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER, str(spool), str(SEED), str(REQUESTS), str(accepted)],
        env=env,
    )
    workers = [start_worker(env) for _ in range(WORKERS)]
    kills = 0
    try:
        deadline = time.monotonic() + 120
        while producer.poll() is None and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 1.2))
            victim = rng.randrange(WORKERS)
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            kills += 1
            workers[victim] = start_worker(env)
        assert producer.wait(timeout=60) == 0
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        if producer.poll() is None:
            producer.kill()
    smtp_server.slow_down(0)
    drained = subprocess.run(
        [sys.executable, "-m", "mailspool", "worker", "--drain", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert drained.returncode == 0, drained.stderr

    expected = set(accepted.read_text().split())
    arrived = collections.Counter(r for e in smtp_server.envelopes for r in e.rcpt_tos)
    assert kills >= 3  # the chaos happened
    assert set(arrived) == expected  # nothing lost, nothing invented
    # in flight plus the ledger's window (the concurrency by default), per kill
    assert sum(arrived.values()) - len(arrived) <= kills * 2 * CONCURRENCY
    wait_for(lambda: os.path.isdir(spool / "done"))
    counts = status(spool, smtp_server)
    assert (counts["pending"], counts["sent"]) == (0, len(expected))
