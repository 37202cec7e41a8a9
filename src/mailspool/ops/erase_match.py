"""One address in every spelling a store may hold it, for ``mailspool erase``.

``AddressMatch.is_address`` compares whole values by canonical form (``mailspool.address``:
a display name, quotes, case, fullwidth letters, Unicode or punycode all give one form).
``found`` and ``scrub`` look for the address inside text (a body, a reason, a log line):
its local part plain or quoted, its domain in ASCII (A-labels) or Unicode (U-labels), any
case, and each of these as JSON writes it with ``\\u`` escapes; written ``Name <address>``,
the display name goes with it (plain or RFC 2047 encoded: the words up to a separator). A match must stand alone:
``bob.ana@example.com`` and ``ana@example.com.evil`` do not hold ``ana@example.com``.

The SHA-256 (hex) of the canonical form counts as the address too: webhook events name
recipients by it (``webhooks.events.address_digest``), and anyone who knows the address
can compute it, so an erased address keeps no such pseudonym either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass

import idna

from mailspool.address import canonical_address
from mailspool.errors import InvalidMessage

__all__ = ["ERASED", "AddressMatch"]

#: What replaces the address wherever it is found inside text.
ERASED = "[erased]"
_ATOM = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_BEFORE = rf"(?<![{_ATOM}.])"
_AFTER = r"(?![A-Za-z0-9\-]|\.[A-Za-z0-9])"
_SEPARATORS = frozenset('<>,:;[]{}\n\r"')  # where a display name before <address> starts
_MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """The canonical form of an address and a pattern for it inside text."""

    canonical: str
    pattern: re.Pattern[str]
    needles: tuple[bytes, ...]  # one of these is in the lower-cased bytes of every match
    digest: str = ""  # the SHA-256 (hex) of ``canonical``, found as the address itself

    @classmethod
    def of(cls, address: str) -> AddressMatch:
        """InvalidMessage (naming ``address``) if it is no e-mail address."""
        canonical = canonical_address(address)
        local, _, domain = canonical.rpartition("@")
        locals_ = {local, local.strip('"'), f'"{local.strip(chr(34))}"'}
        domains = {domain}
        if "xn--" in domain:
            with contextlib.suppress(idna.IDNAError, UnicodeError):
                domains.add(idna.decode(domain))
        alternatives = {f"{lp}@{dp}" for lp in locals_ for dp in domains}
        alternatives |= {_json_escaped(form) for form in alternatives}
        ordered = sorted(alternatives, key=len, reverse=True)  # the longest form first
        body = "|".join(re.escape(form) for form in ordered)
        pattern = f"{_BEFORE}(?:{body}){_AFTER}"
        digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
        needles = tuple({_needle(form) for form in alternatives} | {digest.encode()})
        return cls(canonical, re.compile(pattern, re.IGNORECASE), needles, digest)

    def is_address(self, value: str) -> bool:
        """True if ``value`` is this address, in any spelling (with a display name too),
        or its digest."""
        if value.lower() == self.digest:
            return True
        if len(value) > 1000 or "@" not in value:
            return False
        try:
            return canonical_address(value) == self.canonical
        except InvalidMessage:
            return False

    def found(self, text: str) -> bool:
        return self.pattern.search(text) is not None or self.digest in text.lower()

    def scrub(self, text: str) -> str:
        """``text`` with each occurrence of the address replaced by ``[erased]``; written
        ``Name <address>``, the name goes too (back to a separator, 200 characters at
        most: one pass over the text, whatever its size)."""
        parts: list[str] = []
        done = 0
        for found in self.pattern.finditer(text):
            start, end = found.span()
            if text[start - 1 : start] == "<" and text[end : end + 1] == ">":
                start, end = _name_start(text, start - 1, max(done, start - 1 - _MAX_NAME)), end + 1
            parts += [text[done:start], ERASED]
            done = end
        scrubbed = "".join([*parts, text[done:]])
        return _replace_folded(scrubbed, self.digest) if self.digest else scrubbed

    def found_in(self, data: bytes) -> bool:
        """``found`` on bytes; most objects are ruled out by a plain byte search first
        (an order of magnitude faster than the pattern)."""
        lowered = data.lower()
        if not any(needle in lowered for needle in self.needles):
            return False
        return self.found(data.decode("utf-8", "surrogateescape"))

    def scrub_bytes(self, data: bytes) -> bytes:
        return self.scrub(data.decode("utf-8", "surrogateescape")).encode(
            "utf-8", "surrogateescape"
        )


def _replace_folded(text: str, digest: str) -> str:
    """``text`` with ``[erased]`` for each occurrence of ``digest`` in any case."""
    return re.sub(re.escape(digest), ERASED, text, flags=re.IGNORECASE)


def _needle(form: str) -> bytes:
    """The longest ASCII run of ``form``, lower-cased: whatever the case of a match,
    ``bytes.lower`` of it holds these bytes (non-ASCII letters fold otherwise)."""
    runs = re.findall(r"[\x00-\x7f]+", form)
    return max(runs, key=len, default="@").lower().encode()


def _name_start(text: str, bracket: int, floor: int) -> int:
    """Where the display name before ``<`` at ``bracket`` starts (after a separator)."""
    start = bracket
    while start > floor and text[start - 1] not in _SEPARATORS:
        start -= 1
    return start


def _json_escaped(form: str) -> str:
    """The form as a JSON writer that escapes non-ASCII (and quotes) writes it."""
    if form.isascii() and '"' not in form:
        return form
    return json.dumps(form, ensure_ascii=True)[1:-1]
