"""Version-0 path attachments written by someone who may write the store: an absolute
path, ``..``, a link out of the root, ``/proc/self/environ``. Each fails its e-mail
with nothing read; a file inside ``MAILSPOOL_ATTACHMENT_ROOT`` arrives byte for byte
at a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from mailspool._files import open_beneath
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import InvalidMessage, ObjectRefused
from mailspool.feedback.trace import trace_address
from mailspool.ops.admin import list_failed
from mailspool.policy.attachment_root import PathAttachments
from mailspool.policy.guards import Guards
from mailspool.spool import layout
from mailspool.spool.records import FailedRecord
from mailspool.stores.base import Store
from mailspool.stores.file import FileStore
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.local import drain
from tests.fixtures.smtp_server import SMTPSink

SECRET = "s3cr3t-never-mailed"
INSIDE = bytes(range(256)) * 40  # every byte value: a binary file


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """An uploads root with one file and a link out of it, and a secret beside it."""
    monkeypatch.setenv("MAILSPOOL_TEST_SECRET", SECRET)  # lands in /proc/self/environ
    root = tmp_path / "uploads"
    (root / "2026" / "11").mkdir(parents=True)
    inside = root / "2026" / "11" / "invoice.pdf"
    inside.write_bytes(INSIDE)
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    (root / "link.txt").symlink_to(secret)
    return {"root": root, "inside": inside, "secret": secret}


def failed_records(store: Store) -> list[FailedRecord]:
    return [item.record for item in list_failed(store)]


def hostile_paths(files: dict[str, Path]) -> dict[str, str]:
    root = files["root"]
    return {
        "absolute": str(files["secret"]),
        "dot-dot": f"{root}/2026/../../secret.txt",
        "link out": str(root / "link.txt"),
        "proc": "/proc/self/environ",
    }


def v0_document(attachments: list[list[str]], domain: str = "example.com") -> bytes:
    """The article's file: one e-mail per attachment list, to a{i}@<domain>."""
    meta = {"from": "Site <admin@example.com>", "contentType": "text/html", "charset": "utf-8"}
    emails = [
        {"to": [f"a{i}@{domain}"], "subject": f"s{i}", "message": "<p>x</p>", "attachments": paths}
        for i, paths in enumerate(attachments)
    ]
    return orjson.dumps({"meta": meta, "emails": emails})


def queue_v0(store: Store, attachments: list[list[str]], batch_id: str = "1764400000-42-0") -> str:
    key = layout.queue_key(batch_id)
    store.put(key, v0_document(attachments))
    return key


def deliver_all(store: Store, server: SMTPSink, root: Path | None) -> None:
    options = WorkerOptions(
        concurrency=2, guards=Guards(attachment_root=str(root) if root else None)
    )
    worker = Worker(store, SMTPTransport.from_url(server.url), options=options)
    try:
        drain(worker)
    finally:
        worker.close()


def everything_in(store: Store) -> bytes:
    return b"".join(
        store.get(info.key) for info in store.list("") if not info.key.startswith("quarantine")
    )


def test_hostile_paths_fail_their_e_mails_and_an_inside_file_arrives_byte_for_byte(
    tmp_path: Path, files: dict[str, Path], smtp_server: SMTPSink
) -> None:
    store = FileStore(tmp_path / "spool")
    hostile = hostile_paths(files)
    queue_v0(store, [[path] for path in hostile.values()] + [[str(files["inside"])]])

    deliver_all(store, smtp_server, files["root"])

    [received] = smtp_server.envelopes
    assert received.rcpt_tos == (f"a{len(hostile)}@example.com",)
    [attachment] = list(received.parsed().iter_attachments())
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_payload(decode=True) == INSIDE
    failed = {item.index: item for item in failed_records(store)}
    assert sorted(failed) == list(range(len(hostile)))
    for index, path in enumerate(hostile.values()):
        assert f"attachment {path!r} refused" in failed[index].reason
        assert "MAILSPOOL_ATTACHMENT_ROOT" in failed[index].reason
        assert not failed[index].retryable
    assert SECRET.encode() not in everything_in(store)
    assert SECRET.encode() not in received.content


def test_without_a_root_no_path_is_read_not_even_inside_uploads(
    tmp_path: Path, files: dict[str, Path], smtp_server: SMTPSink
) -> None:
    store = FileStore(tmp_path / "spool")
    queue_v0(store, [[str(files["inside"])], []])

    deliver_all(store, smtp_server, None)

    assert [e.rcpt_tos for e in smtp_server.envelopes] == [("a1@example.com",)]
    [failed] = failed_records(store)
    assert "MAILSPOOL_ATTACHMENT_ROOT, which is not set" in failed.reason


@pytest.mark.parametrize("name", ["absolute", "dot-dot", "link out", "proc"])
def test_each_hostile_path_is_refused_before_anything_is_opened(
    files: dict[str, Path], name: str
) -> None:
    reader = PathAttachments(files["root"], max_bytes=1 << 20)
    with pytest.raises(InvalidMessage, match="MAILSPOOL_ATTACHMENT_ROOT") as caught:
        reader.resolve(hostile_paths(files)[name])
    assert caught.value.field == "attachments"


def test_proc_is_refused_even_under_a_root_that_holds_it() -> None:
    reader = PathAttachments("/", max_bytes=1 << 20)
    with pytest.raises(InvalidMessage, match="/proc, /sys or /dev"):
        reader.read("/proc/self/environ")


def test_a_fifo_inside_the_root_is_refused_without_blocking(files: dict[str, Path]) -> None:
    fifo = files["root"] / "pipe"
    os.mkfifo(fifo)
    reader = PathAttachments(files["root"], max_bytes=1 << 20)
    with pytest.raises(InvalidMessage, match="not a regular file"):
        reader.read(str(fifo))


def test_a_link_swapped_in_after_the_check_is_not_followed(files: dict[str, Path]) -> None:
    reader = PathAttachments(files["root"], max_bytes=1 << 20)
    assert reader.root is not None
    parts = reader.resolve(str(files["inside"]))  # the check passes: a regular file inside
    files["inside"].unlink()
    files["inside"].symlink_to(files["secret"])  # then the swap
    with pytest.raises(ObjectRefused, match="symbolic link"):
        open_beneath(reader.root, parts, "invoice.pdf")
    folder = files["root"] / "2026"
    folder.rename(files["root"] / "moved")
    folder.symlink_to(files["secret"].parent)  # a folder on the way swapped for a link
    with pytest.raises(ObjectRefused, match="symbolic link"):
        open_beneath(reader.root, parts, "invoice.pdf")


def test_a_link_that_stays_inside_the_root_is_read(files: dict[str, Path]) -> None:
    (files["root"] / "latest.pdf").symlink_to(files["inside"])
    reader = PathAttachments(files["root"], max_bytes=1 << 20)
    assert reader.read(str(files["root"] / "latest.pdf")).content == INSIDE


def test_an_attachment_larger_than_the_limit_is_refused_unread(files: dict[str, Path]) -> None:
    reader = PathAttachments(files["root"], max_bytes=len(INSIDE) - 1)
    with pytest.raises(InvalidMessage, match=f"MAILSPOOL_MAX_ATTACHMENT_BYTES={len(INSIDE) - 1}"):
        reader.read(str(files["inside"]))


def test_a_trace_lists_an_e_mail_with_a_path_attachment_without_reading_the_file(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    store = FileStore(tmp_path / "spool")
    queue_v0(store, [[str(files["secret"]), "/proc/self/environ"]])
    [trace] = trace_address(store, "a0@example.com")
    assert (trace.index, trace.subject) == (0, "s0")
