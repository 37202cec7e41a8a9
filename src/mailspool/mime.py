"""Turn a ``Message`` into MIME, and back, with the stdlib ``email`` package only.

``render`` is the worker's path: it builds with the ``email.mime`` classes (the compat32
policy), which costs a fraction of ``EmailMessage`` with ``policy.default`` (about 120 us
against 400-1300 us for a 2 KB HTML message on this project's benchmark machine), and it
yields 7-bit output with CRLF line ends, ready for SMTP or SES raw sends: the same bytes
for both.

**A text body's transfer encoding** (``transfer_encoding``): ``7bit`` when it is ASCII in
lines of at most 998 octets (written as it is); ``quoted-printable`` when a line is
longer than 998 octets (RFC 5322's limit: quoted-printable's soft breaks shorten it
without touching the text, as Django and mail clients do); otherwise the smaller of
``quoted-printable`` and ``base64``, quoted-printable on a tie. Mostly-ASCII text (a
French or German e-mail) is quoted-printable: readable in a terminal and about the size
of the text, where base64 adds a third. Mostly non-Latin text in ordinary lines
(Russian, Greek, Chinese) is base64, which there is half the size of quoted-printable.
8bit is never used: it would need the relay's 8BITMIME, and SES and SMTP get the same
bytes.

**Tags and metadata** (``Message.tags``, ``Message.metadata``) are written as headers,
as django-anymail writes them for providers without an API field for them: one
``X-Tag`` header per tag, and ``X-Metadata`` holding the metadata as a JSON object.
``mailspool.email_model`` gives and takes the modern API (``EmailMessage``) for callers.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import socket
from collections.abc import Hashable, Iterator, Sequence
from email import encoders
from email.charset import BASE64, Charset
from email.header import Header
from email.message import Message as Compat32Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import formataddr, formatdate, make_msgid

from mailspool.body_cache import BodyCache, EncodedBody
from mailspool.errors import InvalidMessage
from mailspool.message import (
    Attachment,
    Message,
    ascii_domain,
    has_utf8_local_part,
    parse_address,
    sender_domain,
)
from mailspool.transfer_encoding import choose as choose_transfer

__all__ = [
    "BODIES",
    "check_line_length",
    "metadata_header",
    "new_message_id",
    "render",
]

TAG_HEADER = "X-Tag"
METADATA_HEADER = "X-Metadata"


class _SMTPCompat32(Compat32):
    """compat32 with CRLF, writing a short ASCII header as it is.

    compat32 folds every header through ``email.header.Header``, which is most of the
    cost of rendering a message; a header that is ASCII and fits on one line needs no
    folding or encoding, so it is written directly. Anything else goes the stdlib way.
    """

    def _fold(self, name: str, value: object, sanitize: bool) -> str:
        if (
            isinstance(value, str)
            and value.isascii()
            and len(name) + len(value) + 2 <= (self.max_line_length or 78)
            and "\n" not in value
            and "\r" not in value
        ):
            return f"{name}: {value}{self.linesep}"
        folded: str = super()._fold(name, value, sanitize)  # type: ignore[misc]
        return folded


_SMTP_COMPAT32 = _SMTPCompat32(linesep="\r\n")
# SMTPUTF8 (RFC 6531/6532): address headers may carry raw UTF-8, which compat32 writes
# as given (from surrogate escapes) when the policy does not sanitize 8-bit headers.
_SMTPUTF8_COMPAT32 = _SMTPCompat32(linesep="\r\n", cte_type="8bit")
_MAX_LINE = 998  # RFC 5322: longer lines must be encoded
_FOLD_AT = 76  # where encoded words are split (RFC 2047 allows at most 75 each)


def render(
    message: Message,
    *,
    message_id: str | None = None,
    default_sender: str = "",
    utf8: bool = False,
    shared: bool = True,
) -> bytes:
    """The message as RFC 5322 bytes with CRLF line ends; Bcc is not in the headers.

    ``message_id`` (``<...>``) is used unless the message carries its own Message-ID;
    otherwise one is made from the sender's domain. Without ``utf8`` the bytes are 7-bit
    and an address whose local part is not ASCII is written as an empty group named by
    that address in an encoded word (RFC 6857's downgrade); with ``utf8`` (the server
    offered SMTPUTF8) it is written as it is, in UTF-8. No line is longer than 998
    octets: a header without room to fold on whitespace is written as encoded words,
    and one that still cannot fit raises ``InvalidMessage`` naming it and the limit.

    The body's encoded MIME parts are shared with every other message of the same body
    (``BODIES``); with ``shared=False`` the whole MIME tree is built and written for this
    message alone, and the bytes are the same (the tests compare the two).
    """
    policy = _policy(utf8)
    sender = message.sender or default_sender
    if shared:
        body = BODIES.get(_body_key(message, utf8), lambda: _encode_body(message, policy))
        head = _Fields()
        _set_root_headers(head, message, sender, message_id, utf8)
        fields = b"".join(_fold(utf8, name, value) for name, value in head.raw_items())
        data = b"".join((body.headers, fields, b"\r\n", body.payload))
    else:
        root = _body(message)
        _set_root_headers(root, message, sender, message_id, utf8)
        data = root.as_bytes(policy=policy)
    check_line_length(data)
    return data


#: Encoded bodies shared across the messages of a batch (one post, many followers).
BODIES = BodyCache()


def _fold(utf8: bool, name: str, value: str | Header) -> bytes:
    if isinstance(value, str):
        return _fold_text(utf8, name, value)
    return _policy(utf8).fold_binary(name, value)  # type: ignore[arg-type]  # compat32 takes Header


@functools.lru_cache(maxsize=1024)
def _fold_text(utf8: bool, name: str, value: str) -> bytes:
    """A header line as the policy folds it; the e-mails of a batch share most of theirs
    (From, Reply-To, Subject), so each is folded once."""
    return _policy(utf8).fold_binary(name, value)


class _Fields:
    """A root's header fields as a compat32 ``Message`` keeps them (its policy stores
    name and value as given) without the message: ``render`` only folds them."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str | Header]] = []

    def __setitem__(self, name: str, value: str | Header) -> None:
        self._items.append((name, value))

    def __contains__(self, name: str) -> bool:
        return any(known.lower() == name.lower() for known, _ in self._items)

    def raw_items(self) -> Iterator[tuple[str, str | Header]]:
        return iter(self._items)


def _policy(utf8: bool) -> _SMTPCompat32:
    return _SMTPUTF8_COMPAT32 if utf8 else _SMTP_COMPAT32


def _body_key(message: Message, utf8: bool) -> Hashable:
    return (message.text, message.html, message.charset, message.attachments, utf8)


def _encode_body(message: Message, policy: _SMTPCompat32) -> EncodedBody:
    """The body's MIME headers and payload, as the generator writes them under the root."""
    if not message.attachments and (message.text is None) != (message.html is None):
        subtype = "plain" if message.html is None else "html"
        return _encode_text_body(message.text or message.html or "", subtype, message.charset)
    written = _body(message).as_bytes(policy=policy)
    headers, _, payload = written.partition(b"\r\n\r\n")
    return EncodedBody(headers + b"\r\n", payload)


def _set_root_headers(
    root: Compat32Message | _Fields,
    message: Message,
    sender: str,
    message_id: str | None,
    utf8: bool,
) -> None:
    _set_headers(root, message, sender, utf8)
    if message.header("Message-ID") is None:
        root["Message-ID"] = message_id or new_message_id(sender)
    if message.header("Date") is None:
        root["Date"] = formatdate(usegmt=True)


def check_line_length(data: bytes) -> None:
    """Raise InvalidMessage naming the header of the first line over 998 octets."""
    if len(data) <= _MAX_LINE or max(map(len, data.split(b"\r\n"))) <= _MAX_LINE:
        return
    header = "message"
    for line in data.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):
            header = line.partition(b":")[0].decode("ascii", "replace")[:80]
        if len(line) > _MAX_LINE:
            break
    raise InvalidMessage(
        f"a line is longer than {_MAX_LINE} octets (the limit of RFC 5322 section 2.1.1) "
        "and cannot be folded",
        field=header,
    )


def _body(message: Message) -> Compat32Message:
    parts = [
        _text_part(content, subtype, message.charset)
        for content, subtype in ((message.text, "plain"), (message.html, "html"))
        if content is not None
    ]
    body = parts[0] if len(parts) == 1 else _multipart("alternative", parts)
    if not message.attachments:
        return body
    return _multipart("mixed", [body, *(_attachment_part(a) for a in message.attachments)])


def _multipart(subtype: str, parts: Sequence[Compat32Message]) -> MIMEMultipart:
    container = MIMEMultipart(subtype)
    del container["MIME-Version"]  # set once, on the root
    for part in parts:
        container.attach(part)
    return container


def _encode_text_body(content: str, subtype: str, charset_name: str) -> EncodedBody:
    """A body of one text part: the bytes the generator writes for ``_text_part``,
    without building it. The payload goes through the generator's own steps (base64 as
    ``encoders.encode_base64`` does it, line ends made CRLF as ``_write_lines`` does; a
    quoted-printable payload is the one ``_text_part`` sets, its line ends CRLF already);
    the headers come from the generator, once for each kind of part."""
    encoded = _charset_encoded(content, charset_name)
    transfer, text = choose_transfer(encoded)
    if transfer == "base64":
        lines = _base64_lines(encoded)
    elif transfer == "quoted-printable":
        lines = text.encode("ascii")  # CRLF already
    else:  # the generator's _write_lines: every line end made CRLF
        lines = "\r\n".join(_LINE_END.split(text)).encode("ascii")
    return EncodedBody(_text_part_headers(subtype, charset_name, transfer), lines)


@functools.lru_cache(maxsize=64)
def _text_part_headers(subtype: str, charset_name: str, transfer: str) -> bytes:
    part = MIMENonMultipart("text", subtype, charset=charset_name)
    del part["MIME-Version"]
    part["Content-Transfer-Encoding"] = transfer
    part.set_payload("")
    return part.as_bytes(policy=_SMTP_COMPAT32).partition(b"\r\n\r\n")[0] + b"\r\n"


_LINE_END = re.compile(r"\r\n|\r|\n")  # the generator's NLCRE


def _base64_lines(data: bytes) -> bytes:
    """``encoders.encode_base64``'s payload as the generator writes it: lines of 76
    (``base64.encodebytes``), each ending CRLF; here from one ``b64encode``."""
    encoded = base64.b64encode(data)
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return b"\r\n".join(lines) + b"\r\n" if lines else b""


def _charset_encoded(content: str, charset_name: str) -> bytes:
    charset = Charset(charset_name)
    try:
        return content.encode(charset.output_charset or charset_name)
    except (LookupError, UnicodeEncodeError) as err:
        raise InvalidMessage(
            f"the body cannot be encoded as {charset_name}: {err}", field="message"
        ) from err


def _text_part(content: str, subtype: str, charset_name: str) -> MIMENonMultipart:
    encoded = _charset_encoded(content, charset_name)
    charset = Charset(charset_name)
    part = MIMENonMultipart("text", subtype, charset=charset_name)
    del part["MIME-Version"]
    transfer, text = choose_transfer(encoded)
    if transfer == "base64":
        charset.body_encoding = BASE64  # 7-bit safe and encoded in C
        part.set_payload(encoded)
        encoders.encode_base64(part)
    else:
        part.set_payload(text)
        part["Content-Transfer-Encoding"] = transfer
    return part


def _attachment_part(attachment: Attachment) -> MIMEBase:
    maintype, _, subtype = attachment.content_type.partition("/")
    part = MIMEBase(maintype, subtype)
    del part["MIME-Version"]
    part.set_payload(attachment.content)
    encoders.encode_base64(part)
    filename: str | tuple[str, str, str] = attachment.filename
    if not attachment.filename.isascii():
        filename = ("utf-8", "", attachment.filename)  # RFC 2231
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def _set_headers(
    root: Compat32Message | _Fields, message: Message, sender: str, utf8: bool
) -> None:
    charset = message.charset
    if "MIME-Version" not in root:
        root["MIME-Version"] = "1.0"
    if sender:
        root["From"] = _format_addresses((sender,), charset, utf8)
    for name, addresses in (("To", message.to), ("Cc", message.cc), ("Reply-To", message.reply_to)):
        if addresses:
            root[name] = _format_addresses(addresses, charset, utf8)
    root["Subject"] = _header_value("Subject", message.subject, charset)  # type: ignore[assignment]
    for name, value in message.headers:
        root[name] = _header_value(name, value, charset)  # type: ignore[assignment]  # compat32 takes Header
    for tag in message.tags:
        root[TAG_HEADER] = _header_value(TAG_HEADER, tag, charset)  # type: ignore[assignment]
    if message.metadata:
        value = metadata_header(message.metadata)
        root[METADATA_HEADER] = _header_value(METADATA_HEADER, value, charset)  # type: ignore[assignment]


def metadata_header(metadata: tuple[tuple[str, str], ...]) -> str:
    """``X-Metadata``'s value: a JSON object, ASCII (``\\u`` escapes), spaced so that a
    long one folds on whitespace."""
    return json.dumps(dict(metadata), ensure_ascii=True, separators=(", ", ": "))


def _header_value(name: str, value: str, charset: str) -> str | Header:
    """ASCII as it is while compat32 can fold it on whitespace into lines of at most
    998 octets; otherwise encoded words, which can be split between any characters."""
    if value.isascii():
        if _foldable(name, value):
            return value
        charset = "utf-8"  # a charset that encodes: us-ascii would be split on spaces only
    return Header(value, _encodable(charset, value), maxlinelen=_FOLD_AT, header_name=name)


def _foldable(name: str, value: str) -> bool:
    """True when every run without whitespace fits on a line with the header's name."""
    if len(name) + len(value) + 2 <= _MAX_LINE:
        return True
    return all(len(name) + len(word) + 2 <= _MAX_LINE for word in value.split())


def _encodable(charset: str, value: str) -> str:
    try:
        value.encode(charset)
    except (LookupError, UnicodeEncodeError):
        return "utf-8"
    return charset


@functools.lru_cache(maxsize=1024)  # a batch's sender and Reply-To, formatted once
def _format_addresses(addresses: tuple[str, ...], charset: str, utf8: bool) -> str:
    formatted = []
    for address in addresses:
        name, addr = parse_address(address)
        local, _, domain = addr.rpartition("@")
        name_charset = _encodable(charset, name)
        if "@" not in addr:  # a bare local part (Django's "django"): as it is
            formatted.append(formataddr((name, addr), name_charset))
        elif not has_utf8_local_part(addr):
            formatted.append(formataddr((name, f"{local}@{ascii_domain(domain)}"), name_charset))
        elif utf8:
            formatted.append(_utf8_address(name, addr, name_charset))
        else:
            formatted.append(_downgraded(name, addr))
    if utf8 and not "".join(formatted).isascii():
        return ",\r\n ".join(formatted)  # compat32 writes raw UTF-8 unfolded: fold here
    return ", ".join(formatted)


def _utf8_address(name: str, addr: str, charset: str) -> str:
    """``Name <local@domain>`` with the address in raw UTF-8 (as surrogate escapes, which
    compat32 turns back into those bytes), the display name encoded as usual."""
    placeholder = "x@x"
    shown = formataddr((name, placeholder), charset)[: -len(placeholder) - 2].rstrip()
    spec = addr.encode("utf-8").decode("ascii", "surrogateescape")
    return f"{shown} <{spec}>" if shown else spec


def _downgraded(name: str, addr: str) -> str:
    """RFC 6857 section 3.1.9: an address 7-bit mail cannot carry becomes an empty group
    named by the address in an encoded word, so readers still see who it was."""
    text = f"{name} <{addr}>" if name else addr
    return f"{Header(text, 'utf-8').encode()}:;"


def new_message_id(sender: str | None) -> str:
    """A fresh ``<...@domain>`` id, in the sender's domain when there is one, else this host's."""
    return make_msgid(domain=sender_domain(sender) or _local_domain())


@functools.cache
def _local_domain() -> str:
    return socket.getfqdn()  # once per process: getfqdn may wait for DNS
