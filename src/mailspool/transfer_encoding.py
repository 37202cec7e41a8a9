"""A text body's transfer encoding: ``7bit`` when it is ASCII in lines of at most 998
octets; ``quoted-printable`` when a line is longer; otherwise the smaller of
quoted-printable and ``base64`` (the rule and its reasons: ``mailspool.mime``)."""

from __future__ import annotations

import binascii
import re

__all__ = ["choose", "quoted_printable", "transfer_encoding"]

_MAX_LINE = 998  # RFC 5322: longer lines must be encoded


def _is_7bit(encoded: bytes) -> bool:
    return encoded.isascii() and all(len(line) <= _MAX_LINE for line in encoded.splitlines())


def transfer_encoding(encoded: bytes) -> str:
    """The Content-Transfer-Encoding of a text body of these bytes (the module doc)."""
    return choose(encoded)[0]


_HIGH = bytes(range(128, 256))


def choose(encoded: bytes) -> tuple[str, str]:
    """The transfer encoding and, unless base64, the payload as the generator takes it:
    the text itself (7bit), or quoted-printable (``quoted_printable``) with CRLF ends."""
    if _is_7bit(encoded):  # ASCII, or a 7-bit charset such as iso-2022-jp: as encoded
        return "7bit", encoded.decode("ascii")
    if any(len(line) > _MAX_LINE for line in encoded.splitlines()):
        return "quoted-printable", "\r\n".join(quoted_printable(encoded))
    size = len(encoded)
    base64_size = _base64_size(size)
    high = size - len(encoded.translate(None, _HIGH))
    if size + 2 * high > base64_size:  # each such byte is 3 in QP: base64 is smaller
        return "base64", ""
    lines = quoted_printable(encoded)
    if sum(map(len, lines)) + 2 * (len(lines) - 1) <= base64_size:
        return "quoted-printable", "\r\n".join(lines)
    return "base64", ""


_QP_LINE = 76  # RFC 2045 section 6.7: encoded lines of at most 76 characters


def quoted_printable(encoded: bytes) -> list[str]:
    """RFC 2045 quoted-printable lines of a text body: a line end of the text (CRLF, CR
    or LF) is a line end, white space before one is encoded, soft line breaks (``=``)
    keep lines to 76 characters. ``binascii.b2a_qp`` (in C: several times faster than
    ``email.quoprimime``) encodes each line of the text alone (given line ends, it drops
    a lone CR before a CRLF); its lines are checked here, since it writes one of 77 or
    more where it encodes white space at the end."""
    result: list[str] = []
    for text_line in _LINE_END.split(encoded):
        soft = binascii.b2a_qp(text_line, istext=True).decode("ascii").split("\n")
        end = soft[-1]
        if end[-1:] in (" ", "\t"):  # white space before the line end
            soft[-1] = f"{end[:-1]}={ord(end[-1]):02X}"
        if max(map(len, soft)) <= _QP_LINE:  # the usual case, checked without a loop here
            result.extend(soft)
            continue
        for line in soft:
            while len(line) > _QP_LINE:
                cut = _QP_LINE - 1  # room for the "=" of the soft break
                cut -= 1 if line[cut - 1] == "=" else 2 if line[cut - 2] == "=" else 0
                result.append(line[:cut] + "=")
                line = line[cut:]
            result.append(line)
    return result


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _base64_size(size: int) -> int:
    """The octets of ``_base64_lines`` for ``size`` octets: lines of 76, each with CRLF."""
    encoded = 4 * ((size + 2) // 3)
    return encoded + 2 * ((encoded + 75) // 76)
