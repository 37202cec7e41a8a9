"""The file transport: one .eml per message, its envelope beside it, private and atomic."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from mailspool.errors import ConfigurationError, TransientError
from mailspool.transports import Transport, open_transport
from mailspool.transports.file import FileTransport
from tests.transport_contract import Arrived, Delivered, TransportContract, simple_message

NAME = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{12}\.eml$")


def read_outbox(folder: Path) -> list[Arrived]:
    """What the folder holds, read without the transport's own helpers."""
    arrived = []
    for eml in sorted(folder.glob("*.eml")):
        envelope = json.loads(eml.with_name(eml.stem + ".envelope.json").read_text("utf-8"))
        message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
        arrived.append((envelope["from"], tuple(envelope["to"]), message))
    return arrived


class TestFileTransport(TransportContract):
    @pytest.fixture
    def transport(self, tmp_path: Path) -> Iterator[Transport]:
        with open_transport(f"file://{tmp_path / 'outbox'}") as transport:
            yield transport

    @pytest.fixture
    def delivered(self, tmp_path: Path) -> Delivered:
        return lambda: read_outbox(tmp_path / "outbox")


def test_files_are_private_and_named_by_time(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "outbox"
    transport = FileTransport(folder)
    for number in range(3):
        transport.send(simple_message(f"m{number}"))
    emls = sorted(path.name for path in folder.glob("*.eml"))
    assert len(emls) == 3
    assert all(NAME.match(name) for name in emls)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    modes = {stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()}
    assert modes == {0o600}
    assert [saved.parsed()["Subject"] for saved in transport.sent()] == ["m0", "m1", "m2"]


def test_the_eml_holds_the_bytes_a_server_would_receive(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path)
    receipt = transport.send(simple_message(bcc="hidden@example.com"))
    [saved] = transport.sent()
    assert saved.data.endswith(b"\r\n")
    assert b"hidden@example.com" not in saved.data
    assert saved.message_id == receipt.message_id
    envelope = json.loads(saved.path.with_name(saved.path.stem + ".envelope.json").read_bytes())
    assert envelope == {
        "from": "sender@example.com",
        "to": ["rcpt@example.com", "hidden@example.com"],
        "message_id": receipt.message_id,
    }


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path)
    for number in range(5):
        transport.send(simple_message(f"m{number}"))
    names = [path.name for path in tmp_path.iterdir()]
    assert len(names) == 10
    assert not [name for name in names if name.startswith(".")]


def test_an_unwritable_outbox_is_a_transient_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    transport = FileTransport(blocker / "outbox")
    with pytest.raises(TransientError, match="cannot write to the outbox"):
        transport.send(simple_message())


@pytest.mark.parametrize(
    ("url", "relative"),
    [("file://outbox", "outbox"), ("file:outbox", "outbox"), ("file://./a/b", "a/b")],
)
def test_relative_urls_are_relative_to_the_current_directory(
    url: str, relative: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    transport = open_transport(url)
    assert isinstance(transport, FileTransport)
    assert transport.directory == tmp_path / relative
    transport.send(simple_message())
    assert len(list((tmp_path / relative).glob("*.eml"))) == 1


def test_absolute_and_home_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    absolute = open_transport(f"file://{tmp_path}/abs")
    home = open_transport("file://~/mail")
    assert isinstance(absolute, FileTransport)
    assert isinstance(home, FileTransport)
    assert absolute.directory == tmp_path / "abs"
    assert absolute.url == f"file://{tmp_path}/abs"
    assert home.directory == tmp_path / "mail"


@pytest.mark.parametrize("url", ["file://", "file:"])
def test_a_url_without_a_folder_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="names no folder"):
        open_transport(url)
