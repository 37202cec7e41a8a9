"""Key-encryption keys: they wrap each object's data key (``spool.envelope``).

``MAILSPOOL_ENCRYPTION_KEY`` lists them, comma-separated, each in one of three forms:

```
<44 characters>        32 random bytes in URL-safe base64 (a local key)
file:/etc/mailspool/k  a file holding such a key (and nothing else but a line break)
kms:arn:aws:kms:...    an AWS KMS key: GenerateDataKey to seal, Decrypt to open
```
The first key seals everything written; every key listed opens what it sealed, found by
the ``kid`` in the envelope (``local:`` and 16 hex digits of a hash of the key, or
``kms:`` and the ARN). Rotation: put the new key first and keep the old ones listed
while files sealed by them remain: records that never expire (the suppression list, the
erasure key) keep an old key needed for the store's life (docs/security.md).

Data keys unwrapped are kept in a bounded cache, so reading a batch's ledger records
asks KMS once, not once per record; a log (a ledger) is sealed record by record under
one data key per log and process (``log_key``), again one KMS call, not one per record.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mailspool._backends import boto3_client
from mailspool.errors import ConfigurationError, StoreError, Undecryptable

__all__ = ["DataKey", "KeyEncryptionKey", "Keyring", "KmsKey", "LocalKey", "keyring_of"]

SETTING = "MAILSPOOL_ENCRYPTION_KEY"
_KEY_BYTES = 32
_CACHE = 4096
#: KMS binds each data key to this context: a blob made for another use is refused
_KMS_CONTEXT = {"mailspool": "data-key"}
#: a KMS error that means the blob is not this key's, or was changed: the file's fault
_NOT_OURS = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})


@dataclass(frozen=True, slots=True)
class DataKey:
    """A data key in both forms: ``key`` encrypts, ``wrapped`` goes in the envelope."""

    kid: str
    key: bytes
    wrapped: bytes


class KeyEncryptionKey(abc.ABC):
    """One configured key: makes fresh data keys and unwraps them."""

    kid: str

    @abc.abstractmethod
    def new_data_key(self) -> DataKey:
        """A fresh 256-bit data key with its wrapped form."""

    @abc.abstractmethod
    def unwrap(self, wrapped: bytes, source: str) -> bytes:
        """The data key; ``Undecryptable`` if ``wrapped`` is not this key's."""


class LocalKey(KeyEncryptionKey):
    """A 256-bit key held by the process; data keys wrapped with AES key wrap (RFC 3394)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ConfigurationError(f"{SETTING}: a local key is {_KEY_BYTES} bytes")
        self._key = key
        digest = hashlib.sha256(b"mailspool key id\0" + key).hexdigest()
        self.kid = f"local:{digest[:16]}"

    def new_data_key(self) -> DataKey:
        from cryptography.hazmat.primitives.keywrap import aes_key_wrap

        key = os.urandom(_KEY_BYTES)
        return DataKey(self.kid, key, aes_key_wrap(self._key, key))

    def unwrap(self, wrapped: bytes, source: str) -> bytes:
        from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

        try:
            key = aes_key_unwrap(self._key, wrapped)
        except (InvalidUnwrap, ValueError):
            raise Undecryptable(
                f"{source}: its data key does not unwrap under {self.kid!r} (changed bytes)"
            ) from None
        if len(key) != _KEY_BYTES:
            raise Undecryptable(f"{source}: its data key is not {_KEY_BYTES} bytes")
        return key


class KmsKey(KeyEncryptionKey):
    """An AWS KMS key: data keys from ``GenerateDataKey``, unwrapped by ``Decrypt``,
    both under mailspool's encryption context (``_KMS_CONTEXT``)."""

    def __init__(self, arn: str, client: Any = None) -> None:
        self.arn = arn
        self.kid = f"kms:{arn}"
        self._client = client
        self._lock = threading.Lock()

    def _kms(self) -> Any:
        with self._lock:
            if self._client is None:
                parts = self.arn.split(":")
                region = parts[3] if len(parts) > 4 and parts[0] == "arn" else None
                self._client = boto3_client("kms", region, user="the KMS key of " + SETTING)
            return self._client

    def new_data_key(self) -> DataKey:
        answer = self._call("generate_data_key", None, KeySpec="AES_256")
        return DataKey(self.kid, answer["Plaintext"], answer["CiphertextBlob"])

    def unwrap(self, wrapped: bytes, source: str) -> bytes:
        key: bytes = self._call("decrypt", source, CiphertextBlob=wrapped)["Plaintext"]
        if len(key) != _KEY_BYTES:
            raise Undecryptable(f"{source}: its data key is not {_KEY_BYTES} bytes")
        return key

    def _call(self, operation: str, source: str | None, **params: Any) -> dict[str, Any]:
        """One KMS call (``source``: the object whose data key is unwrapped); a refused
        blob is ``Undecryptable``, anything else (throttling, no permission, the
        network) a ``StoreError``: retried later, never quarantined."""
        from botocore.exceptions import BotoCoreError, ClientError

        method = getattr(self._kms(), operation)
        try:
            answer: dict[str, Any] = method(
                KeyId=self.arn, EncryptionContext=_KMS_CONTEXT, **params
            )
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if source and code in _NOT_OURS:
                raise Undecryptable(f"{source}: KMS refuses its data key ({code})") from err
            raise StoreError(f"KMS {operation} on {self.arn} failed: {err}") from err
        except BotoCoreError as err:
            raise StoreError(f"KMS {operation} on {self.arn} failed: {err}") from err
        return answer


class Keyring:
    """The configured keys: the first seals, all open (by ``kid``)."""

    def __init__(self, keys: Sequence[KeyEncryptionKey]) -> None:
        if not keys:
            raise ConfigurationError(f"{SETTING}: no key")
        self.keys = tuple(keys)
        self._by_kid = {key.kid: key for key in reversed(self.keys)}
        self._lock = threading.Lock()
        self._unwrapped: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._logs: OrderedDict[str, DataKey] = OrderedDict()

    def check(self) -> None:
        """Raise unless the sealing key makes a data key and unwraps it now (a worker
        checks at start: a KMS key it may not use is named before any batch is taken)."""
        made = self.keys[0].new_data_key()
        if self.keys[0].unwrap(made.wrapped, f"{SETTING} (the check)") != made.key:
            raise ConfigurationError(f"{SETTING}: {made.kid} unwraps another data key")

    def new_data_key(self) -> DataKey:
        key = self.keys[0].new_data_key()
        self._remember((key.kid, key.wrapped), key.key)
        return key

    def log_key(self, log: str) -> DataKey:
        """The data key this process seals the records of ``log`` with."""
        with self._lock:
            found = self._logs.get(log)
            if found is not None:
                self._logs.move_to_end(log)
                return found
        made = self.new_data_key()
        with self._lock:
            self._logs[log] = made
            if len(self._logs) > _CACHE:
                self._logs.popitem(last=False)
        return made

    def unwrap(self, kid: str, wrapped: bytes, source: str) -> bytes:
        """The data key in an envelope; ``Undecryptable`` for a ``kid`` not configured."""
        with self._lock:
            found = self._unwrapped.get((kid, wrapped))
        if found is not None:
            return found
        kek = self._by_kid.get(kid)
        if kek is None:
            raise Undecryptable(
                f"{source}: sealed with key {kid!r}, which {SETTING} does not list "
                f"(it lists {', '.join(repr(k.kid) for k in self.keys)})"
            )
        key = kek.unwrap(wrapped, source)
        self._remember((kid, wrapped), key)
        return key

    def _remember(self, found: tuple[str, bytes], key: bytes) -> None:
        with self._lock:
            self._unwrapped[found] = key
            if len(self._unwrapped) > _CACHE:
                self._unwrapped.popitem(last=False)


@lru_cache(maxsize=16)
def keyring_of(specs: tuple[str, ...]) -> Keyring:
    """The keyring the setting's value describes, made once per process (the caches and
    the KMS client are shared by every store opened with it)."""
    return Keyring([_key_of(spec.strip()) for spec in specs])


def _key_of(spec: str) -> KeyEncryptionKey:
    if spec.startswith("kms:"):
        arn = spec.removeprefix("kms:")
        if not arn:
            raise ConfigurationError(f"{SETTING}: kms: names no key (kms:arn:aws:kms:...)")
        return KmsKey(arn)
    if spec.startswith("file:"):
        path = Path(spec.removeprefix("file:"))
        try:
            text = path.read_text("ascii").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigurationError(f"{SETTING}: cannot read the key file {path}: {err}") from err
        return LocalKey(_decoded(text, f"the key file {path}"))
    return LocalKey(_decoded(spec, "a key"))


def _decoded(text: str, what: str) -> bytes:
    """The key in URL-safe base64; the error never shows it."""
    try:
        key = base64.b64decode(text.encode("ascii"), altchars=b"-_", validate=True)
    except (UnicodeEncodeError, binascii.Error):
        key = b""
    if len(key) != _KEY_BYTES:
        raise ConfigurationError(
            f"{SETTING}: {what} must be {_KEY_BYTES} bytes in URL-safe base64 "
            "(make one: python -c 'import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())'), "
            "file:PATH or kms:KEY-ARN"
        )
    return key
