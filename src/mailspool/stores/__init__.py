"""Stores: where batches wait. ``open_store(url)`` picks the backend by the URL's scheme.

```
file:///var/spool/mailspool    FileStore at an absolute path
file://spool, file:spool       FileStore relative to the current directory
/var/spool/mailspool, spool    a plain path (str or Path): a FileStore too
file://~/spool, ~/spool        ~ is the user's home
memory:                        a new, private MemoryStore
memory:NAME                    the MemoryStore called NAME, shared by the whole process
s3://BUCKET/PREFIX             S3Store (pip install 'mailspool[aws]')
```

A ``file:`` URL is taken literally (no percent-decoding, no host part): what follows
``file://`` or ``file:`` is the path, so ``file://spool`` is the folder ``spool`` in the
current directory, not a host called spool.

Each backend is a class with ``from_url(url, **options)``, imported on first use, so a
missing optional dependency only matters to the URL that needs it and says which extra
to install.
"""

from __future__ import annotations

import os
import re
from typing import Any

from mailspool._backends import load_backend
from mailspool.errors import ConfigurationError
from mailspool.stores.base import Lease, ObjectInfo, Store

__all__ = ["Lease", "ObjectInfo", "Store", "check_record", "open_store"]

_BACKENDS = {
    "file": "mailspool.stores.file:FileStore",
    "memory": "mailspool.stores.memory:MemoryStore",
    "s3": "mailspool.stores.s3:S3Store",
}
_EXAMPLES = ("file://DIR", "memory:", "s3://BUCKET/PREFIX")
# scheme -> (what needs it, the extra to install, the top-level modules it provides)
_EXTRAS = {"s3": ("the S3 store", "aws", frozenset({"boto3", "botocore"}))}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def open_store(url: str | os.PathLike[str], **options: Any) -> Store:
    """Open the store a URL names; ``options`` go to the backend's constructor.

    A URL without a scheme, or a ``Path``, is a folder for the file store. An unknown
    scheme is a ``ConfigurationError`` that names the URL and the schemes known.
    """
    if isinstance(url, os.PathLike):
        return _file_store(os.fspath(url), options)
    match = _SCHEME.match(url)
    if match is None:
        return _file_store(url, options)
    scheme = match.group(1).lower()
    if scheme not in _BACKENDS:
        known = ", ".join(_EXAMPLES)
        raise ConfigurationError(
            f"unknown store URL {url!r}: the known kinds are {known}, or a plain folder path"
        )
    store: Store = _backend(scheme).from_url(url, **options)
    return store


def check_record(record: bytes) -> None:
    """Refuse a log record that would not come back as itself: empty, or a line break
    inside (a log is one line per record). For backends."""
    if not record:
        raise ConfigurationError("a log record may not be empty")
    if b"\n" in record or b"\r" in record:
        raise ConfigurationError("a log record may not contain a line break")


def _file_store(path: str, options: dict[str, Any]) -> Store:
    store: Store = _backend("file")(path, **options)
    return store


def _backend(scheme: str) -> Any:
    return load_backend(_BACKENDS, _EXTRAS, scheme)
