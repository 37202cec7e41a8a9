"""wp_mail-style headers: a string of ``Name: value`` lines, a list of lines, or a mapping.

The article's ``wp_mail($to, $subject, $message, $headers)`` takes headers this way, and
so does ``mailspool.send_mail``. From, Cc, Bcc, Reply-To and Content-Type become fields
of the e-mail; everything else stays an extra header. Parsing is cached, since a request
that notifies 5000 followers passes the same headers 5000 times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import Message as _HeaderParser
from enum import StrEnum
from functools import lru_cache

from mailspool.errors import InvalidMessage
from mailspool.message import check_header, split_addresses

__all__ = ["PRIORITY_HEADER", "HeaderFields", "Priority", "parse_headers"]

#: The header that marks an e-mail's priority: ``now`` or ``deferred`` (a contract).
PRIORITY_HEADER = "X-Mailspool-Priority"


class Priority(StrEnum):
    """The words of the priority header and of ``MAILSPOOL_DEFAULT_PRIORITY``."""

    NOW = "now"
    DEFERRED = "deferred"


HeaderInput = str | Mapping[str, str] | Iterable[str] | None


@dataclass(frozen=True, slots=True)
class HeaderFields:
    """Headers split into the e-mail's fields and the rest."""

    sender: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    content_type: str | None = None
    charset: str | None = None
    priority: Priority | None = None
    extra: tuple[tuple[str, str], ...] = ()


def parse_headers(headers: HeaderInput) -> HeaderFields:
    """Split headers into fields; CR/LF inside a value given as a mapping is refused."""
    if headers is None or headers == "":
        return HeaderFields()
    if isinstance(headers, str):
        return _parse_pairs(tuple(_lines_to_pairs(headers.replace("\r\n", "\n").split("\n"))))
    if isinstance(headers, Mapping):
        pairs = tuple((str(k), str(v)) for k, v in headers.items())
        for name, value in pairs:
            check_header(name, value)
        return _parse_pairs(pairs)
    return _parse_pairs(tuple(_lines_to_pairs(list(headers))))


def _lines_to_pairs(lines: list[str]) -> Iterable[tuple[str, str]]:
    pairs: list[list[str]] = []
    for line in lines:
        if "\r" in line or "\n" in line:
            raise InvalidMessage("a header line contains a line break", field="headers")
        if not line.strip():
            continue
        if line[0] in " \t":  # folded continuation of the previous header (RFC 5322)
            if not pairs:
                raise InvalidMessage(f"header line {line!r} continues nothing", field="headers")
            pairs[-1][1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise InvalidMessage(f"header line {line!r} has no 'Name:'", field="headers")
        pairs.append([name.strip(), value.strip()])
    return ((name, value) for name, value in pairs)


@lru_cache(maxsize=256)
def _parse_pairs(pairs: tuple[tuple[str, str], ...]) -> HeaderFields:
    found: dict[str, object] = {}
    extra: list[tuple[str, str]] = []
    for name, value in pairs:
        check_header(name, value)
        lowered = name.lower()
        if lowered == "from":
            found["sender"] = _one_sender(value)
        elif lowered in ("cc", "bcc", "reply-to"):
            key = lowered.replace("-", "_")
            found[key] = (*found.get(key, ()), *split_addresses(value, name))  # type: ignore[misc]
        elif lowered == "content-type":
            found["content_type"], found["charset"] = _content_type(value)
        elif lowered == PRIORITY_HEADER.lower():
            found["priority"] = _priority(value)
        elif lowered in ("mime-version", "content-transfer-encoding", "to", "subject"):
            raise InvalidMessage(
                f"header {name!r} is set by mailspool, not by the caller", field=name
            )
        else:
            extra.append((name, value))
    return HeaderFields(extra=tuple(extra), **found)  # type: ignore[arg-type]


def _one_sender(value: str) -> str | None:
    """The one From address; several are refused rather than all but one dropped."""
    addresses = split_addresses(value, "from") if value.strip() else ()
    if len(addresses) > 1:
        raise InvalidMessage(
            f"From names {len(addresses)} addresses ({value!r}): give one sender "
            "(others who should get replies go in Reply-To)",
            field="From",
        )
    return addresses[0] if addresses else None


def _content_type(value: str) -> tuple[str, str | None]:
    parser = _HeaderParser()
    parser["Content-Type"] = value
    content_type = parser.get_content_type()
    if content_type not in ("text/plain", "text/html"):
        raise InvalidMessage(
            f"content type {content_type!r}: send text/plain or text/html (attachments apart)",
            field="Content-Type",
        )
    charset = parser.get_param("charset")
    return content_type, charset.lower() if isinstance(charset, str) else None


def _priority(value: str) -> Priority:
    try:
        return Priority(value.strip().lower())
    except ValueError:
        raise InvalidMessage(
            f"{PRIORITY_HEADER} must be 'now' or 'deferred', not {value!r}", field=PRIORITY_HEADER
        ) from None
