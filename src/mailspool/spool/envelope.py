"""The encrypted file format, version 1: one JSON object on one line.

```
{"mailspool_encrypted": 1, "alg": "AES-256-GCM", "kid": "local:1a2b3c4d5e6f7a8b",
 "wrapped_key": "<base64url>", "nonce": "<base64url, 12 bytes>",
 "ciphertext": "<base64url: the object's bytes, AES-GCM, 16-byte tag at the end>"}
```
``wrapped_key`` is the object's own data key (256 bits, fresh per object) wrapped by the
key-encryption key ``kid`` names (``spool.keyring``); empty once the key was dropped
(erasure: ``sealed_store.drop_data_key``), after which nothing opens it. The associated data binds the
ciphertext to its version, its ``kid`` and its *binding*, the name of what it belongs to
(the batch id for ``queue/<id>.json``, ``done/<id>.json``, ``ledger/<id>``...): a file
copied under another batch's name, or given another ``kid``, fails authentication.

A clear file never starts with ``MARK`` (a batch file starts ``{"meta"`` or ``{"version"``),
so readers tell the two apart by their first bytes, and clear files stay readable.
The JSON Schema is ``schema/encrypted-v1.schema.json``; every way an envelope can be
wrong is an ``Undecryptable`` naming the source and the field.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

import orjson

from mailspool.errors import Undecryptable

__all__ = ["ALG", "MARK", "NONCE_BYTES", "Envelope", "is_sealed", "parse"]

VERSION = 1
ALG = "AES-256-GCM"
#: every envelope mailspool writes starts with these bytes (orjson keeps key order)
MARK = b'{"mailspool_encrypted":1,'
NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_KID = 256
#: an AES key-wrapped key is 40 bytes, a KMS ciphertext blob a few hundred
_MAX_WRAPPED = 2048
_FIELDS = frozenset({"mailspool_encrypted", "alg", "kid", "wrapped_key", "nonce", "ciphertext"})


def is_sealed(data: bytes) -> bool:
    """True for bytes in this format (or pretending to be): they must open or be refused."""
    return data.startswith(MARK)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One sealed object or log record, as stored."""

    kid: str
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes

    @classmethod
    def seal(
        cls, plaintext: bytes, *, binding: str, kid: str, data_key: bytes, wrapped_key: bytes
    ) -> Envelope:
        """``plaintext`` encrypted under ``data_key`` with a fresh nonce, bound to ``binding``."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(data_key).encrypt(nonce, plaintext, associated_data(kid, binding))
        return cls(kid, wrapped_key, nonce, sealed)

    def without_key(self) -> Envelope:
        """The same envelope with its data key dropped: it can never be opened again."""
        return Envelope(self.kid, b"", self.nonce, self.ciphertext)

    def opens(self, source: str) -> None:
        """``Undecryptable`` if its data key was dropped (``without_key``)."""
        if not self.wrapped_key:
            raise Undecryptable(f"{source}: its data key was dropped (erased); it never opens")

    def open(self, data_key: bytes, *, binding: str, source: str) -> bytes:
        """The plaintext; ``Undecryptable`` if the tag does not verify."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            return AESGCM(data_key).decrypt(
                self.nonce, self.ciphertext, associated_data(self.kid, binding)
            )
        except InvalidTag:
            raise Undecryptable(
                f"{source}: the ciphertext fails authentication under key {self.kid!r} "
                f"for {binding!r} (a changed byte, or a file moved from another name)"
            ) from None

    def encode(self) -> bytes:
        """One line of JSON, starting with ``MARK``."""
        return orjson.dumps(
            {
                "mailspool_encrypted": VERSION,
                "alg": ALG,
                "kid": self.kid,
                "wrapped_key": _b64(self.wrapped_key),
                "nonce": _b64(self.nonce),
                "ciphertext": _b64(self.ciphertext),
            }
        )


def associated_data(kid: str, binding: str) -> bytes:
    """What the tag covers beside the ciphertext: the version, the key id, the binding."""
    return orjson.dumps(["mailspool_encrypted", VERSION, kid, binding])


def parse(data: bytes, source: str) -> Envelope:
    """The envelope in ``data``; ``Undecryptable`` naming ``source`` and the field if the
    bytes are not exactly version 1 of this format."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _bad(source, "not JSON") from None
    if not isinstance(document, dict):
        raise _bad(source, "not a JSON object")
    if set(document) != _FIELDS:
        wrong = sorted(set(document) ^ _FIELDS)[:4]
        raise _bad(source, f"fields missing or unknown: {', '.join(map(repr, wrong))}")
    version = document["mailspool_encrypted"]
    if type(version) is not int or version != VERSION:
        raise _bad(source, f"mailspool_encrypted is {str(version)[:20]!r}, not {VERSION}")
    if document["alg"] != ALG:
        raise _bad(source, f"alg is not {ALG!r}")
    kid = document["kid"]
    if not isinstance(kid, str) or not 0 < len(kid) <= _MAX_KID or not kid.isprintable():
        raise _bad(source, f"kid is not printable text of 1 to {_MAX_KID} characters")
    wrapped = _bytes(document, "wrapped_key", source)
    nonce = _bytes(document, "nonce", source)
    ciphertext = _bytes(document, "ciphertext", source)
    if len(wrapped) > _MAX_WRAPPED:  # empty: the key was dropped (``Envelope.opens``)
        raise _bad(source, f"wrapped_key is more than {_MAX_WRAPPED} bytes")
    if len(nonce) != NONCE_BYTES:
        raise _bad(source, f"nonce is not {NONCE_BYTES} bytes")
    if len(ciphertext) < _TAG_BYTES:
        raise _bad(source, f"ciphertext is shorter than its {_TAG_BYTES}-byte tag")
    return Envelope(kid, wrapped, nonce, ciphertext)


def _bytes(document: dict[str, Any], field: str, source: str) -> bytes:
    value = document[field]
    if not isinstance(value, str):
        raise _bad(source, f"{field} is not text")
    try:
        return base64.b64decode(value.encode("ascii"), altchars=b"-_", validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise _bad(source, f"{field} is not base64url") from None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _bad(source: str, why: str) -> Undecryptable:
    return Undecryptable(f"{source}: not a valid encrypted envelope (format 1): {why}")
