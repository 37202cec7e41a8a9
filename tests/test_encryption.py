"""Encryption at rest on the file store, delivered to a real SMTP server (aiosmtpd).

The same batches, sealed and clear, deliver the same bytes; nothing written holds an
address or a subject in clear; a file that does not open is quarantined with its reason
and nothing of it is sent; a rotated key keeps old batches deliverable; clear files
written before encryption was turned on still deliver.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

import mailspool
from mailspool.config import Settings
from mailspool.delivery.factory import open_worker
from mailspool.ops.quarantine import delete_quarantined, list_quarantined, show_quarantined
from mailspool.spool import layout
from mailspool.spool.envelope import is_sealed
from mailspool.spool.quarantine import quarantined_files
from mailspool.spool.records import QuarantineError
from mailspool.spool.sealed_store import sealed
from mailspool.stores.file import FileStore
from mailspool.triggers.local import DrainReport, drain
from tests.fixtures.smtp_server import SMTPSink

SECRETS = ("Ana Secret-Reader", "ana.secret@example.org", "Quarterly secret subject")


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def settings_for(spool: Path, server: SMTPSink, *keys: str) -> Settings:
    return Settings.load(store=f"file://{spool}", transport=server.url, encryption_key=keys)


def hand_off(settings: Settings, count: int = 3) -> None:
    with mailspool.request(settings=settings):
        for i in range(count):
            mailspool.send_mail(
                f"{SECRETS[0]} <ana.secret+{i}@example.org>",
                f"{SECRETS[2]} {i}",
                f"<p>Hello {i}</p>",
                {"Cc": SECRETS[1]},
                [("report.txt", b"attachment body " * 4000, "text/plain")],
            )


def deliver(settings: Settings) -> DrainReport:
    with open_worker(settings) as worker:
        return drain(worker)


def sent_bytes(server: SMTPSink, start: int = 0) -> list[bytes]:
    """The bytes received from the ``start``-th e-mail on, in order, each without its
    ``Date:`` line: the worker stamps the time of sending there, the rest is the batch's."""
    return sorted(
        re.sub(rb"(?m)^Date: [^\r\n]*\r\n", b"", envelope.content)
        for envelope in server.envelopes[start:]
    )


def every_file(spool: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(spool)): path.read_bytes()
        for path in spool.rglob("*")
        if path.is_file() and ".leases" not in path.parts
    }


def clear_texts_in(files: dict[str, bytes]) -> list[str]:
    """Files holding an address or the subject as written, or as a header encodes it."""
    needles = [s.encode() for s in SECRETS] + [b"ana.secret", b"Quarterly"]
    return sorted(name for name, data in files.items() if any(n in data for n in needles))


def test_sealed_and_clear_batches_deliver_the_same_bytes(
    tmp_path: Path, smtp_server: SMTPSink
) -> None:
    clear_spool, sealed_spool = tmp_path / "clear", tmp_path / "sealed"
    key = new_key()
    hand_off(settings_for(clear_spool, smtp_server))
    clear_store = FileStore(clear_spool)
    sealed_store = sealed(FileStore(sealed_spool), (key,))
    # the same batch files in both stores: one clear, one sealed on the way in
    for name in clear_store.keys(layout.QUEUE):
        sealed_store.put(name, clear_store.get(name))
    for name in clear_store.keys(layout.BLOBS):
        sealed_store.put(name, clear_store.get(name))

    assert deliver(settings_for(clear_spool, smtp_server)).sent == 3
    clear_bytes = sent_bytes(smtp_server)
    assert deliver(settings_for(sealed_spool, smtp_server, key)).sent == 3
    sealed_bytes = sent_bytes(smtp_server, 3)

    assert sealed_bytes == clear_bytes
    assert any(SECRETS[2].encode() in content for content in sealed_bytes)


def test_nothing_written_holds_an_address_or_a_subject_in_clear(
    spool: Path, smtp_server: SMTPSink
) -> None:
    settings = settings_for(spool, smtp_server, new_key())
    hand_off(settings)
    pending = every_file(spool)
    assert any(name.startswith(layout.QUEUE) for name in pending)
    assert clear_texts_in(pending) == []
    assert all(is_sealed(data) for name, data in pending.items() if "queue/" in name)

    assert deliver(settings).sent == 3
    finished = every_file(spool)
    assert any(name.startswith(layout.DONE) for name in finished)
    assert any(name.startswith(layout.LEDGER) for name in finished)
    assert clear_texts_in(finished) == []
    assert len(smtp_server.envelopes) == 3


def test_a_wrong_key_quarantines_the_batch_and_sends_nothing(
    spool: Path, smtp_server: SMTPSink
) -> None:
    hand_off(settings_for(spool, smtp_server, new_key()), count=1)
    wrong = new_key()
    report = deliver(settings_for(spool, smtp_server, wrong))

    assert report.sent == 0
    assert smtp_server.envelopes == []
    assert_quarantined_because(spool, wrong, "does not list")


def test_a_flipped_byte_quarantines_the_batch_and_sends_nothing(
    spool: Path, smtp_server: SMTPSink
) -> None:
    key = new_key()
    hand_off(settings_for(spool, smtp_server, key), count=1)
    (path,) = (spool / "queue").glob("*.json")
    envelope = orjson.loads(path.read_bytes())
    ciphertext = bytearray(base64.urlsafe_b64decode(envelope["ciphertext"]))
    ciphertext[len(ciphertext) // 2] ^= 0x01  # one bit of the batch, changed
    envelope["ciphertext"] = base64.urlsafe_b64encode(bytes(ciphertext)).decode()
    path.write_bytes(orjson.dumps(envelope))

    report = deliver(settings_for(spool, smtp_server, key))

    assert report.sent == 0
    assert smtp_server.envelopes == []
    assert_quarantined_because(spool, key, "fails authentication")


def test_a_batch_copied_under_another_name_does_not_open(
    spool: Path, smtp_server: SMTPSink
) -> None:
    key = new_key()
    hand_off(settings_for(spool, smtp_server, key), count=1)
    (path,) = (spool / "queue").glob("*.json")
    path.rename(path.with_name(f"{layout.new_batch_id()}.json"))

    assert deliver(settings_for(spool, smtp_server, key)).sent == 0
    assert smtp_server.envelopes == []
    assert_quarantined_because(spool, key, "moved from another name")


def test_a_rotated_key_keeps_old_batches_deliverable(spool: Path, smtp_server: SMTPSink) -> None:
    old, new = new_key(), new_key()
    hand_off(settings_for(spool, smtp_server, old), count=2)
    hand_off(settings_for(spool, smtp_server, new, old), count=2)

    report = deliver(settings_for(spool, smtp_server, new, old))

    assert report.sent == 4
    assert len(smtp_server.envelopes) == 4
    assert list(quarantined_files(FileStore(spool))) == []


def test_clear_batches_written_before_encryption_still_deliver(
    spool: Path, smtp_server: SMTPSink
) -> None:
    hand_off(settings_for(spool, smtp_server), count=2)
    (path, *_) = (spool / "queue").glob("*.json")
    assert path.read_bytes().startswith(b"{")
    assert not is_sealed(path.read_bytes())  # off: the format is unchanged

    assert deliver(settings_for(spool, smtp_server, new_key())).sent == 2
    assert len(smtp_server.envelopes) == 2


def test_a_key_file_seals_as_the_key_itself(spool: Path, smtp_server: SMTPSink) -> None:
    key = new_key()
    key_file = spool.parent / "mailspool.key"
    key_file.write_text(key + "\n")
    hand_off(settings_for(spool, smtp_server, f"file:{key_file}"), count=1)

    assert deliver(settings_for(spool, smtp_server, key)).sent == 1


def assert_quarantined_because(spool: Path, key: str, reason: str) -> None:
    """One file in quarantine, as it was found, beside its error (sealed too)."""
    store = FileStore(spool)
    assert list(store.keys(layout.QUEUE)) == []
    (found,) = quarantined_files(store)
    assert is_sealed(store.get(found.key))
    error_data = sealed(store, (key,)).get(layout.error_key(found.key))
    assert reason in QuarantineError.decode(error_data, source=found.key).error


def test_a_quarantined_file_that_does_not_open_is_listed_shown_and_deleted(
    spool: Path, smtp_server: SMTPSink
) -> None:
    hand_off(settings_for(spool, smtp_server, new_key()), count=1)
    key = new_key()
    deliver(settings_for(spool, smtp_server, key))
    store = sealed(FileStore(spool), (key,))

    (listed,) = list_quarantined(store)
    assert "does not list" in (listed.error or "")
    _, shown = show_quarantined(store, listed.id)
    assert is_sealed(shown)  # as it was found
    delete_quarantined(store, listed.id)
    assert list_quarantined(store) == []


def test_the_cli_drains_and_counts_a_sealed_store(spool: Path, smtp_server: SMTPSink) -> None:
    key = new_key()
    hand_off(settings_for(spool, smtp_server, key), count=2)
    env = {
        **os.environ,
        "MAILSPOOL_STORE": f"file://{spool}",
        "MAILSPOOL_TRANSPORT": smtp_server.url,
        "MAILSPOOL_ENCRYPTION_KEY": key,
    }

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "mailspool", *args],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("worker", "--drain")
    counts = json.loads(cli("status", "--json"))

    assert (counts["sent"], counts["pending"], counts["quarantined"]) == (2, 0, 0)
    assert len(smtp_server.envelopes) == 2
    assert clear_texts_in(every_file(spool)) == []
