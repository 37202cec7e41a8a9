"""One e-mail, immutable, as plain validated fields.

The request path keeps e-mails in this form and never builds MIME (building one
``EmailMessage`` costs hundreds of microseconds); the worker turns it into bytes with
``mailspool.mime``. Conversion to and from the stdlib ``email.message.EmailMessage`` is
here for callers that have one (framework glue, tests).

Addresses are parsed and checked by ``mailspool.address`` (re-exported here), and kept
as the caller wrote them (``"Jürgen Groß <j@example.de>"``): MIME encoding of display
names happens when the message is rendered. Comparing two addresses (suppression,
events, unsubscribe) goes through ``mailspool.address.canonical_address``.

**A bare local part** (``"django"``, no ``@`` and no domain) is what Django's SMTP
backend hands to the relay, which decides (a local mailbox, an alias, a refusal): the
model carries one only in an e-mail marked ``bare=True`` (the Django backend marks the
e-mails that name one; a batch file says so in ``meta.bareLocalParts``), so it can
travel through a batch file to an SMTP relay. It must be an ASCII dot-atom
(``bare_local_part``); every other address keeps every check of ``mailspool.address``,
and an e-mail not so marked refuses a bare local part as before (``mailspool.send_mail``
takes ``"nobody"`` for a typo). Transports that cannot carry one (SES needs a domain)
refuse such an e-mail with ``PermanentError``.

**Tags and metadata** are django-anymail's ``msg.tags = [...]`` and
``msg.metadata = {...}``: labels and key-value pairs that travel with the e-mail for
the sender's own tracking. SES gets them as message tags, SMTP as ``X-Tag`` and
``X-Metadata`` headers (see ``mailspool.mime``), batch files as ``tags`` and
``metadata`` (docs/format.md).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses
from functools import lru_cache
from pathlib import Path

from mailspool.address import (
    address_spec,
    ascii_domain,
    canonical_address,
    has_utf8_local_part,
    parse_address,
    sender_domain,
)
from mailspool.address import has_line_break as _has_line_break
from mailspool.errors import InvalidMessage
from mailspool.tenant_options import TENANT_NAME

__all__ = [
    "Attachment",
    "Message",
    "address_spec",
    "ascii_domain",
    "bare_local_part",
    "check_header",
    "has_utf8_local_part",
    "message_address",
    "parse_address",
    "sender_domain",
    "split_addresses",
]

# Headers that the model carries as fields; they may not be repeated as extra headers.
MODELLED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "content-type",
        "content-transfer-encoding",
        "mime-version",
    }
)


def check_header(name: str, value: str) -> None:
    """Refuse header injection: CR or LF in a value, or a malformed field name."""
    if not name or not all(33 <= ord(c) <= 126 and c != ":" for c in name):
        raise InvalidMessage(f"invalid header name {name!r}", field="headers")
    if _has_line_break(value):
        raise InvalidMessage(
            f"header {name!r} contains a line break (CR, LF or another line separator): refused as header injection",
            field=name,
        )


#: RFC 5322 dot-atom in ASCII: what a bare local part may be.
_BARE_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def bare_local_part(value: str) -> str | None:
    """The local part when ``value`` is a bare one (``"django"``, ``"Ops <ops>"``): no
    ``@``, an ASCII dot-atom, no line break or other unprintable character anywhere.
    None for anything else (a full address included)."""
    if "@" in value or _has_line_break(value) or not value.isprintable():
        return None
    addr = parse_address(value)[1]
    written = value.strip()  # the whole value is the local part, or "Name <local>"
    if not _BARE_LOCAL.fullmatch(addr) or (written != addr and not written.endswith(f"<{addr}>")):
        return None
    return addr


def message_address(value: str, field_name: str = "to") -> str:
    """The bare address of one of a Message's addresses: ``address_spec``, or a bare
    local part (see the module doc). Raises InvalidMessage for anything else."""
    try:
        return address_spec(value, field_name)
    except InvalidMessage:
        bare = bare_local_part(value)
        if bare is None:
            raise
        return bare


def split_addresses(
    value: str | Iterable[str] | None, field_name: str = "to", *, bare: bool = False
) -> tuple[str, ...]:
    """Addresses from a comma-separated string or a list, each one checked.

    ``"a@x, Bob <b@y>"`` and ``["a@x", "Bob <b@y>"]`` both give two addresses. A list
    item is taken whole when it holds one address, so a display name with a comma
    (``'"Doe, Jane" <j@x>'``) survives. ``bare``: a bare local part (``"django"``) is
    accepted, as Django's SMTP backend accepts it.
    """
    if value is None:
        return ()
    check = message_address if bare else address_spec
    items = [value] if isinstance(value, str) else list(value)
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidMessage(f"expected an address string, got {item!r}", field=field_name)
        if "," not in item:  # one address: skip the list parser
            stripped = item.strip()
            if stripped:
                check(stripped, field_name)
                result.append(stripped)
            continue
        if _has_line_break(item):
            address_spec(item, field_name)  # raises with the injection message
        parsed = getaddresses([item])
        if len(parsed) <= 1:
            stripped = item.strip()
            if stripped:
                check(stripped, field_name)
                result.append(stripped)
            continue
        for name, addr in parsed:
            if not addr and not name:
                continue
            text = f"{name} <{addr}>" if name else addr
            check(text, field_name)
            result.append(text)
    return tuple(result)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to an e-mail: its name, its MIME type and its bytes."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"

    def __post_init__(self) -> None:
        if not self.filename or _has_line_break(self.filename):
            raise InvalidMessage(
                f"invalid attachment file name {self.filename!r}", field="attachments"
            )
        maintype, slash, subtype = self.content_type.partition("/")
        if not slash or not maintype or not subtype or _has_line_break(self.content_type):
            raise InvalidMessage(
                f"invalid attachment content type {self.content_type!r}", field="attachments"
            )

    @classmethod
    def from_path(cls, path: str | Path, content_type: str | None = None) -> Attachment:
        """Read a file from disk; the type is guessed from the name when not given."""
        file = Path(path)
        try:
            content = file.read_bytes()
        except OSError as err:
            raise InvalidMessage(
                f"cannot read attachment {str(file)!r}: {err.strerror or err}", field="attachments"
            ) from err
        guessed = content_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return cls(filename=file.name, content=content, content_type=guessed)

    @classmethod
    def coerce(cls, value: object) -> Attachment:
        """An Attachment from a path, a ``(name, bytes[, type])`` tuple or an Attachment."""
        if isinstance(value, Attachment):
            return value
        if isinstance(value, str | Path):
            return cls.from_path(value)
        if isinstance(value, tuple | list) and len(value) in (2, 3):
            name, content, *rest = value
            if isinstance(content, str):
                content = content.encode("utf-8")
            if not isinstance(name, str) or not isinstance(content, bytes | bytearray):
                raise InvalidMessage(
                    "an attachment tuple is (filename, bytes[, content type])", field="attachments"
                )
            content_type = rest[0] if rest else None
            guessed = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
            return cls(filename=name, content=bytes(content), content_type=guessed)
        raise InvalidMessage(
            f"an attachment is a path or (filename, bytes, type), not {type(value).__name__}",
            field="attachments",
        )


@dataclass(frozen=True, slots=True)
class Message:
    """One e-mail. ``sender`` is the From address; ``None`` means the configured default.

    At least one recipient (to, cc or bcc) and one body (text or html) are required.
    Bcc addresses go into the SMTP envelope only, never into a header. ``tags`` and
    ``metadata``: django-anymail's, for the sender's tracking. ``bare``: an address may
    be a bare local part (see the module doc).
    """

    to: tuple[str, ...]
    subject: str
    text: str | None = None
    html: str | None = None
    sender: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    charset: str = "utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment, ...] = field(default=())
    #: The envelope sender (SMTP MAIL FROM) when it is not the From address: the
    #: signed bounce address a worker sets for VERP (``mailspool.feedback.verp``).
    return_path: str | None = None
    tags: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    bare: bool = False
    #: The W3C traceparent of the span that queued it (``mailspool.tracing``), if any.
    traceparent: str | None = None
    #: The SES tenant that sends it (``TenantName``); other transports ignore it.
    tenant: str | None = None

    def __post_init__(self) -> None:
        if not (self.to or self.cc or self.bcc):
            raise InvalidMessage("no recipient", field="to")
        check = message_address if self.bare else address_spec
        for name in ("to", "cc", "bcc", "reply_to"):
            for address in getattr(self, name):
                check(address, name)
        if self.sender is not None:
            check(self.sender, "from")
        if self.return_path is not None:
            address_spec(self.return_path, "return_path")
        if not isinstance(self.subject, str):
            raise InvalidMessage("the subject must be a string", field="subject")
        if _has_line_break(self.subject):
            raise InvalidMessage(
                "contains a line break (CR, LF or another line separator): refused as header injection",
                field="subject",
            )
        if self.text is None and self.html is None:
            raise InvalidMessage("no body: give text, html or both", field="message")
        if not self.charset or _has_line_break(self.charset) or not self.charset.isascii():
            raise InvalidMessage(f"invalid charset {self.charset!r}", field="charset")
        for name, value in self.headers:
            check_header(name, value)
            if name.lower() in MODELLED_HEADERS:
                raise InvalidMessage(
                    f"header {name!r} is a field of the e-mail: pass it as such", field="headers"
                )
        _check_labels(self.tags, self.metadata)
        if self.tenant is not None and not (
            isinstance(self.tenant, str) and TENANT_NAME.fullmatch(self.tenant)
        ):
            raise InvalidMessage(
                f"a tenant name is 1 to 64 ASCII letters, digits, '_' or '-', not {self.tenant!r}",
                field="tenant",
            )

    @property
    def envelope_sender(self) -> str:
        """The bare address for SMTP MAIL FROM: ``return_path`` if set, else the sender's
        ('' when both are unset)."""
        if self.return_path:
            return address_spec(self.return_path, "return_path")
        return message_address(self.sender, "from") if self.sender else ""

    @property
    def envelope_recipients(self) -> tuple[str, ...]:
        """Every bare address for SMTP RCPT TO: to, cc and bcc, each once, in order; two
        spellings of one address (``canonical_address``) are one, as first written."""
        return _envelope_recipients(tuple(self.to), tuple(self.cc), tuple(self.bcc))

    @property
    def bare_addresses(self) -> tuple[str, ...]:
        """The addresses (sender and Reply-To included) that are a bare local part."""
        every = (
            *((self.sender,) if self.sender else ()),
            *self.to,
            *self.cc,
            *self.bcc,
            *self.reply_to,
        )
        return tuple(a for a in every if self.bare and bare_local_part(a) is not None)

    @property
    def recipient_count(self) -> int:
        """How many recipients a provider counts against its rate (SES counts each)."""
        return len(self.envelope_recipients)

    def header(self, name: str) -> str | None:
        """The first extra header of that name, case-insensitively."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @classmethod
    def build(
        cls,
        *,
        to: str | Sequence[str] | None,
        subject: str,
        text: str | None = None,
        html: str | None = None,
        sender: str | None = None,
        cc: str | Sequence[str] | None = None,
        bcc: str | Sequence[str] | None = None,
        reply_to: str | Sequence[str] | None = None,
        charset: str = "utf-8",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        attachments: Iterable[object] = (),
        tags: Iterable[str] = (),
        metadata: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> Message:
        """A Message from loose input: comma-separated strings, mappings, file paths."""
        header_items = tuple(headers.items() if isinstance(headers, Mapping) else headers or ())
        pairs = metadata.items() if isinstance(metadata, Mapping) else metadata or ()
        return cls(
            to=split_addresses(to, "to"),
            subject=subject,
            text=text,
            html=html,
            sender=sender,
            cc=split_addresses(cc, "cc"),
            bcc=split_addresses(bcc, "bcc"),
            reply_to=split_addresses(reply_to, "reply_to"),
            charset=charset,
            headers=header_items,
            attachments=tuple(Attachment.coerce(a) for a in attachments),
            tags=tuple(tags),
            metadata=tuple((str(k), str(v)) for k, v in pairs),
        )


def _check_labels(tags: tuple[str, ...], metadata: tuple[tuple[str, str], ...]) -> None:
    """Tags: non-empty text, each once; metadata: text keys (each once) and text values;
    no line break anywhere (they become header values)."""
    if not isinstance(tags, tuple) or not isinstance(metadata, tuple):
        raise InvalidMessage("tags and metadata must be tuples", field="tags")
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or _has_line_break(tag):
            raise InvalidMessage(
                f"a tag is non-empty text without line breaks, not {tag!r}", field="tags"
            )
    if len(set(tags)) != len(tags):
        raise InvalidMessage(f"a tag is given twice in {list(tags)!r}", field="tags")
    keys: set[str] = set()
    for pair in metadata:
        key, value = pair if isinstance(pair, tuple) and len(pair) == 2 else (None, None)
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise InvalidMessage(
                f"metadata is text keys with text values, not {pair!r}", field="metadata"
            )
        if _has_line_break(key) or _has_line_break(value):
            raise InvalidMessage(f"metadata {key!r} holds a line break: refused", field="metadata")
        if key in keys:
            raise InvalidMessage(f"metadata key {key!r} is given twice", field="metadata")
        keys.add(key)


@lru_cache(maxsize=1024)  # asked five times for each e-mail on its way (steps, transport, limits)
def _envelope_recipients(
    to: tuple[str, ...], cc: tuple[str, ...], bcc: tuple[str, ...]
) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for address in (*to, *cc, *bcc):
        bare = bare_local_part(address)
        key = bare.lower() if bare is not None else canonical_address(address)
        seen.setdefault(key, parse_address(address)[1])
    return tuple(seen.values())
