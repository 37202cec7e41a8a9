"""Delivery to the terminal, for development: ``console:`` or ``console:?stream=stderr``.

Each message is written as a separator line, the envelope (``Envelope-From:`` and
``Envelope-To:``, Bcc included, which the message itself never shows), then the rendered
message exactly as an SMTP server would receive it, decoded (it is 7-bit) with plain
``\\n`` line ends. One lock around each write keeps messages from several threads whole.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from mailspool.errors import ConfigurationError
from mailspool.message import Message
from mailspool.transports._common import check_options, prepare, query_parameters, split_url
from mailspool.transports.base import Receipt, Transport

__all__ = ["SEPARATOR", "ConsoleTransport"]

SEPARATOR = "=" * 30 + " mailspool: message " + "=" * 30
"""The line written before every message; split the output on it to read messages back."""

_STREAMS = frozenset({"stdout", "stderr"})


class ConsoleTransport(Transport):
    """Writes every message to a text stream (standard output unless told otherwise)."""

    def __init__(self, stream: str | TextIO = "stdout") -> None:
        """``stream`` is ``"stdout"``, ``"stderr"`` (looked up at each send, so redirection
        and capture work) or any open text stream."""
        if isinstance(stream, str) and stream not in _STREAMS:
            raise ConfigurationError(f"stream must be stdout or stderr, not {stream!r}")
        self._stream = stream
        name = stream if isinstance(stream, str) else "custom"
        self.url = "console:" if name == "stdout" else f"console:?stream={name}"
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ConsoleTransport:
        """``console:``, ``console://`` or ``console:?stream=stderr``."""
        parts = split_url(url)
        if parts.scheme != "console" or parts.netloc or parts.path or parts.fragment:
            raise ConfigurationError(
                f"not a console transport URL (console: or console:?stream=stderr): {url!r}"
            )
        check_options(cls.__init__, options, url)
        arguments: dict[str, Any] = dict(query_parameters(url, parts.query, {"stream"}))
        arguments.update(options)
        return cls(**arguments)

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        """Write the envelope and the message; returns the Message-ID it carries."""
        outgoing = prepare(message, message_id)
        text = "\n".join(
            (
                SEPARATOR,
                f"Envelope-From: {outgoing.sender}",
                f"Envelope-To: {', '.join(outgoing.recipients)}",
                outgoing.data.decode("ascii", "replace").replace("\r\n", "\n"),
            )
        )
        with self._lock:
            stream = self._target()
            stream.write(text if text.endswith("\n") else text + "\n")
            stream.flush()
        return Receipt(outgoing.message_id)

    def _target(self) -> TextIO:
        if isinstance(self._stream, str):
            target: TextIO = getattr(sys, self._stream)
            return target
        return self._stream
