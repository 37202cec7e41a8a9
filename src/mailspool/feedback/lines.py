"""The lines of an operator's file (``events ingest``, ``suppression import``), each alone.

The file is read as bytes, one line at a time and at most ``MAX_LINE`` bytes of it at
once, so memory stays bounded whatever the file's size. Each line is decoded as UTF-8 by
itself: a byte that is not UTF-8 costs its own line (a ``Line`` with a ``problem`` that
names the file, the line number and the byte), never the file; a line longer than the
limit is reported and skipped, read past in pieces, never held whole. A UTF-8 byte order
mark at the start of the file is not part of its first line. Blank lines are skipped.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

__all__ = ["MAX_LINE", "Line", "read_lines"]

#: The longest line read (bytes): an SES event is at most 256 KB, a Lambda event 6 MB.
MAX_LINE = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Line:
    """Line ``number`` of ``source``: its ``text``, or why it cannot be read."""

    source: str
    number: int
    text: str = ""
    problem: str = ""

    def where(self) -> str:
        """``FILE, line N``, as every report of a bad line starts."""
        return f"{self.source}, line {self.number}"

    def fail(self, reason: object) -> str:
        """A report of this line: ``FILE, line N: reason`` (the reason said once)."""
        text = str(reason)
        return text if text.startswith(self.where()) else f"{self.where()}: {text}"


def read_lines(file: IO[bytes] | IO[str], *, limit: int = MAX_LINE) -> Iterator[Line]:
    """Every non-blank line of ``file`` (binary, or text already decoded), in order."""
    source = str(getattr(file, "name", "-") or "-")
    number = 0
    while True:
        raw = file.readline(limit + 1)
        if not raw:
            return
        number += 1
        line = Line(source, number)
        if len(raw) > limit and not _ends_line(raw):
            _skip_rest(file, limit)
            yield Line(source, number, problem=line.fail(f"longer than {limit} bytes: skipped"))
            continue
        text, problem = _decode(raw, first=number == 1)
        if problem:
            yield Line(source, number, problem=line.fail(problem))
        elif text.strip():
            yield Line(source, number, text=text.strip())


def _ends_line(raw: str | bytes) -> bool:
    return raw.endswith(b"\n") if isinstance(raw, bytes) else raw.endswith("\n")


def _skip_rest(file: IO[bytes] | IO[str], limit: int) -> None:
    """Read past the rest of an over-long line, ``limit`` at a time."""
    while True:
        piece = file.readline(limit)
        if not piece or _ends_line(piece):
            return


def _decode(raw: str | bytes, *, first: bool) -> tuple[str, str]:
    """(text, "") or ("", why it is not UTF-8)."""
    if isinstance(raw, str):
        return raw.removeprefix("\ufeff") if first else raw, ""
    if first:
        raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError as err:
        byte = raw[err.start]
        return "", f"not UTF-8: byte 0x{byte:02x} at column {err.start + 1}"
