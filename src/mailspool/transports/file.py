"""Delivery into a folder, one ``.eml`` file per message: ``file://DIR``.

The URL follows the file store's rule: what comes after ``file://`` (or ``file:``) is
the folder, taken literally (no percent-decoding, no host part, no query), and ``~`` is
the user's home. ``file:///var/mail/outbox`` is absolute; ``file://outbox`` and
``file:outbox`` are the folder ``outbox`` in the current directory.

Each message becomes ``<stamp>-<random>.eml`` (``20261127T181348123456Z-1a2b3c4d5e6f.eml``:
names sort by the time of the send and never collide), holding exactly the bytes an SMTP
server would have received. Bcc addresses are never written into that file; the
envelope (sender, every recipient, Bcc included, and the Message-ID) goes beside it in
``<stamp>-<random>.envelope.json``, written first, so a reader that sees the ``.eml``
also finds its envelope. Both are written atomically (temp file in the same folder,
fsync, rename, folder fsync), mode 0600, in a folder created 0700: e-mails are personal
data. Safe from many threads and processes: every send writes files of its own.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from mailspool._files import fsync_folder, make_folder, write_atomically
from mailspool.errors import ConfigurationError, TransientError
from mailspool.message import Message
from mailspool.transports._common import check_options, prepare
from mailspool.transports.base import Receipt, Transport

__all__ = ["FileTransport", "SavedMessage"]

_ENVELOPE_SUFFIX = ".envelope.json"


@dataclass(frozen=True, slots=True)
class SavedMessage:
    """A message as the file transport left it: its file, its envelope, its bytes."""

    path: Path
    envelope_sender: str
    envelope_recipients: tuple[str, ...]
    message_id: str
    data: bytes

    def parsed(self) -> EmailMessage:
        """The stdlib message (``policy.default``)."""
        return BytesParser(policy=policy.default).parsebytes(self.data)


class FileTransport(Transport):
    """Writes each message to ``directory`` as an ``.eml`` file with an envelope beside it."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        if not os.fspath(directory):
            raise ConfigurationError("the file transport needs a folder")
        self.directory = Path(os.path.abspath(os.path.expanduser(directory)))
        self.url = f"file://{self.directory}"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FileTransport:
        """``file:///abs/dir``, ``file://rel/dir`` or ``file:rel/dir`` (see the module)."""
        scheme, colon, rest = url.partition(":")
        if scheme.lower() != "file" or not colon:
            raise ConfigurationError(f"not a file transport URL (file://DIR): {url!r}")
        check_options(cls.__init__, options, url)
        arguments: dict[str, Any] = {"directory": rest.removeprefix("//")}
        arguments.update(options)
        if not arguments["directory"]:
            raise ConfigurationError(f"file transport URL {url!r} names no folder")
        return cls(**arguments)

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        """Write the message and its envelope; a write failure is a ``TransientError``."""
        outgoing = prepare(message, message_id)
        envelope = {
            "from": outgoing.sender,
            "to": list(outgoing.recipients),
            "message_id": outgoing.message_id,
        }
        stem = _new_stem()
        try:
            make_folder(self.directory)
            write_atomically(self.directory / f"{stem}{_ENVELOPE_SUFFIX}", _json(envelope))
            write_atomically(self.directory / f"{stem}.eml", outgoing.data)
            fsync_folder(self.directory)
        except OSError as err:
            raise TransientError(
                f"cannot write to the outbox {str(self.directory)!r}: {err.strerror or err}"
            ) from err
        return Receipt(outgoing.message_id)

    def sent(self) -> list[SavedMessage]:
        """Every message in the folder, oldest first (for tests and tools)."""
        if not self.directory.is_dir():
            return []
        return [_load(path) for path in sorted(self.directory.glob("[!.]*.eml"))]


def _new_stem() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(6)}"


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8")


def _load(path: Path) -> SavedMessage:
    envelope = json.loads(path.with_name(path.name[: -len(".eml")] + _ENVELOPE_SUFFIX).read_bytes())
    return SavedMessage(
        path=path,
        envelope_sender=envelope["from"],
        envelope_recipients=tuple(envelope["to"]),
        message_id=envelope["message_id"],
        data=path.read_bytes(),
    )
