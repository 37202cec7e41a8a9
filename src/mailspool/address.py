"""E-mail addresses: parse and check one, and its one canonical form for comparing.

Addresses are parsed by the stdlib (``email.utils``), never by a regular expression, and
kept as the caller wrote them (``"Jürgen Groß <j@example.de>"``) for sending. The domain
that parsing yields must be the one written, and a domain name once in ASCII: RFC 5321's
labels of letters, digits and hyphens between dots, or an address literal in brackets.

**Refused** wherever an address enters (``send_mail``, ``Message``, a batch file's e-mail,
``suppression add``): a line break anywhere (header injection); a control character
(C0, DEL, C1) anywhere, since the address goes out raw in ``RCPT TO``; an invisible
character (format characters such as the soft hyphen, zero-width space, bidi controls,
and the other default-ignorable code points) in the address itself: it would let one
address be written in spellings that look the same and compare different. Display names
may hold format characters (emoji joiners, bidi marks in right-to-left names).

**The canonical form** (``canonical_address``) is the one string every comparison uses:
the suppression list (its keys), the screen before a send, SES events, ``trace`` and
unsubscribe tokens. Two spellings that reach the same mailbox give the same form:

- the display name is dropped;
- the local part is unquoted when its quoted form needs no quoting (``"ana"`` and ``ana``,
  ``"a\\na"`` and ``ana``), and quoted minimally when it does (``"a b"``);
  then NFKC-normalised and lower-cased (as SES and the mailbox providers treat it);
- the domain is mapped with IDNA 2008 through UTS 46 (``idna.encode(..., uts46=True)``,
  non-transitional), so fullwidth letters, the ideographic full stop (U+3002) and upper
  case fold away, and is kept in **ASCII** (A-labels, ``xn--``): SES reports recipients in
  that form, ``RCPT TO`` carries it (``ascii_domain`` maps the same way, so what is
  screened is what is sent), and it is plain ASCII in keys, logs and SES's own list.
  An ASCII domain is only lower-cased; an address literal (``[192.0.2.1]``) too.

Suppression entries written before this form (the whole address lower-cased, the domain
as written) are found through ``legacy_forms``.
"""

from __future__ import annotations

import contextlib
import re
import string
import unicodedata
from email.utils import parseaddr
from functools import lru_cache

import idna

from mailspool.errors import InvalidMessage

__all__ = [
    "address_spec",
    "ascii_domain",
    "canonical_address",
    "canonical_domain",
    "has_line_break",
    "has_utf8_local_part",
    "legacy_forms",
    "parse_address",
    "sender_domain",
]

# Every character that str.splitlines(), and so the stdlib email package, treats as the
# end of a line: any of them in a header would start a new header (injection).
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")

# RFC 5321's Domain once in ASCII: labels of letters, digits and hyphens (1 to 63 each)
# between dots, or an address literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``)
_DOMAIN = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*|\[[A-Za-z0-9.:-]+\]")
_DOMAIN_RULE = (
    "a domain is labels of letters, digits and hyphens (1 to 63 each, IDNA for others) "
    "between dots, or an address literal in brackets"
)
_MAX_DOMAIN = 255  # RFC 5321, section 4.5.3.1.2

# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties) that are not format
# characters (Cf): variation selectors, fillers, the combining grapheme joiner...
_IGNORABLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# The joiners of IDNA 2008's CONTEXTJ rule: in a domain, the idna package decides
_JOINERS = frozenset("\u200c\u200d")
# RFC 5322 atext, beside letters and digits; any non-ASCII character counts too (RFC 6532)
_ATEXT = frozenset("!#$%&'*+-/=?^_`{|}~")
_ASCII_DOT_ATOM = frozenset(string.ascii_letters + string.digits + ".") | _ATEXT


def has_line_break(value: str) -> bool:
    return not _LINE_BREAKS.isdisjoint(value)


@lru_cache(maxsize=8192)  # rendering and the envelope parse the same addresses again
def parse_address(value: str) -> tuple[str, str]:
    """``email.utils.parseaddr``, cached: ``("Ana", "ana@example.com")``."""
    return parseaddr(value)


def sender_domain(sender: str | None) -> str:
    """The domain of the sender's address; empty when there is no sender or no domain."""
    _, at, domain = parse_address(sender)[1].rpartition("@") if sender else ("", "", "")
    return domain if at else ""


def has_utf8_local_part(address: str) -> bool:
    """True when the part before the last ``@`` is not ASCII: it can only travel with
    SMTPUTF8 (RFC 6531), never through a 7-bit envelope or header."""
    return not address.rpartition("@")[0].isascii()


def address_spec(value: str, field_name: str = "to") -> str:
    """The bare ``local@domain`` of one address, checked; raise InvalidMessage if none."""
    try:
        return _address_spec(value)
    except InvalidMessage as err:
        raise InvalidMessage(err.reason, field=field_name) from None


def canonical_address(value: str, field: str = "address") -> str:
    """The one form of an address that comparisons use (see the module docstring):
    ``Ana <"Ana"@Example.com>`` -> ``ana@example.com``, and so for fullwidth letters
    or U+3002 as the dot. Raises InvalidMessage (naming ``field``) for what
    ``address_spec`` refuses."""
    try:
        return _canonical(value.strip())
    except InvalidMessage as err:
        raise InvalidMessage(err.reason, field=field) from None


@lru_cache(maxsize=1024)
def canonical_domain(domain: str) -> str:
    """The domain in lower-case ASCII: A-labels by IDNA 2008 with UTS 46 mapping."""
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as err:
        raise InvalidMessage(
            f"domain {domain!r} cannot be encoded with IDNA 2008 (UTS 46): {err}"
        ) from None


def ascii_domain(domain: str) -> str:
    """The domain as it travels without SMTPUTF8: IDNA (A-labels) mapped as the canonical
    form maps it, or as given when it is ASCII. Raise InvalidMessage when IDNA cannot."""
    return domain if domain.isascii() else canonical_domain(domain)


def legacy_forms(value: str) -> tuple[str, ...]:
    """Forms that earlier versions keyed an address under (the whole address lower-cased,
    the domain as written), other than its canonical form: the spelling given, and the
    canonical address with its domain in Unicode (U-labels). Never raises."""
    try:
        canonical = canonical_address(value)
    except InvalidMessage:
        return ()
    forms = [parse_address(value.strip())[1].lower()]
    local, _, domain = canonical.rpartition("@")
    if "xn--" in domain:
        with contextlib.suppress(idna.IDNAError, UnicodeError):
            forms.append(f"{local}@{idna.decode(domain)}")
    return tuple(dict.fromkeys(f for f in forms if f and f != canonical))


# -- checking -------------------------------------------------------------------------


@lru_cache(maxsize=8192)  # the request path checks each address twice; parsing costs ~8 us
def _address_spec(value: str) -> str:
    if has_line_break(value):
        raise InvalidMessage(
            "address contains a line break (CR, LF or another line separator): refused as header injection"
        )
    _refuse_controls(value)
    _, addr = parse_address(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or " " in addr:
        raise InvalidMessage(f"not an e-mail address: {value!r}")
    _refuse_invisible(local, value, allowed=frozenset())
    _refuse_invisible(domain, value, allowed=_JOINERS)
    _check_domain(domain, value)  # refused here, so no transport ever meets it
    _canonical_local(local, value)  # its canonical form must be an address too
    return addr


def _refuse_controls(value: str) -> None:
    if value.isascii() and value.isprintable():
        return  # the common case: no control character in printable ASCII
    bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise InvalidMessage(
            f"address {value!r} contains the control character {_named(bad)}: refused, "
            "it would go out raw in the SMTP envelope"
        )


def _refuse_invisible(part: str, value: str, allowed: frozenset[str]) -> None:
    if part.isascii():
        return
    bad = next((c for c in part if c not in allowed and _is_invisible(c)), None)
    if bad is not None:
        raise InvalidMessage(
            f"address {value!r} contains the invisible character {_named(bad)}: refused, "
            "one address must not have spellings that look the same"
        )


def _is_invisible(char: str) -> bool:
    if unicodedata.category(char) == "Cf":
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _IGNORABLE)


def _named(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def _check_domain(domain: str, value: str) -> None:
    if domain not in value:  # parsing joins the words of "x@exa mple.com" into example.com
        raise InvalidMessage(
            f"the domain of {value!r} must be written as one word: no spaces or comments in it"
        )
    encoded = ascii_domain(domain)
    if len(encoded) > _MAX_DOMAIN or not _DOMAIN.fullmatch(encoded):
        raise InvalidMessage(f"domain {domain!r} of {value!r} refused: {_DOMAIN_RULE}")


# -- the canonical form ---------------------------------------------------------------


@lru_cache(maxsize=8192)
def _canonical(value: str) -> str:
    local, _, domain = _address_spec(value).rpartition("@")
    return f"{_canonical_local(local, value)}@{canonical_domain(domain)}"


@lru_cache(maxsize=8192)
def _canonical_local(local: str, value: str) -> str:
    """What the local part means (quoting undone), NFKC and lower case, written plain
    when it is a dot-atom, else as one minimal quoted string. Refused when that meaning
    holds what no address may (a space: NFKC makes one of U+00A0 or U+00A8, say), so that
    the canonical form of an address is always an address, and its own canonical form."""
    if _ASCII_DOT_ATOM.issuperset(local) and _dots_fit(local):
        return local.lower()  # the common case: ASCII is NFKC already, and needs no quotes
    meaning = _unquoted(local)
    for _ in range(4):  # lower() can undo NFKC (and back): stop where neither changes it
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", meaning).lower())
        if folded == meaning:
            break
        meaning = folded
    odd = next((c for c in meaning if c.isspace() or not c.isprintable()), None)
    if odd is not None:
        raise InvalidMessage(
            f"the local part of {value!r} stands for {meaning!r} (Unicode NFKC), "
            f"which holds {_named(odd)}: not an e-mail address"
        )
    if _is_dot_atom(meaning):
        return meaning
    escaped = meaning.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _unquoted(local: str) -> str:
    """The characters a local part stands for: ``"a\\"b".c`` -> ``a"b.c``. Words are
    atoms or quoted strings between dots (RFC 5322, obs-local-part included); text that
    is not so written (an unclosed quote) is kept as it is."""
    words: list[str] = []
    word: list[str] = []
    quoted = escaped = was_quoted = False
    for char in local:
        if escaped:
            word.append(char)
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
            was_quoted = True
        elif char == "." and not quoted:
            words.append("".join(word))
            word = []
        else:
            word.append(char)
    if quoted or escaped:
        return local
    words.append("".join(word))
    return ".".join(words) if was_quoted else local


def _dots_fit(text: str) -> bool:
    return ".." not in text and not text.startswith(".") and not text.endswith(".")


def _is_dot_atom(text: str) -> bool:
    atoms = text.split(".")
    return (
        all(atoms)
        and all(c.isalnum() or c in _ATEXT or not c.isascii() for atom in atoms for c in atom)
        and not any(c.isspace() or c in _LINE_BREAKS for c in text)
    )
