"""Transports: how e-mail leaves. ``open_transport(url)`` picks the backend by scheme.

```
smtp://[user:password@]host[:port][?starttls=...]   SMTPTransport, pooled connections
smtps://[user:password@]host[:port]                 SMTPTransport over implicit TLS
ses://REGION                                        SESTransport (pip install 'mailspool[aws]')
file:///abs/dir, file://rel/dir, file:rel/dir       FileTransport: one .eml per message
console:, console:?stream=stderr                    ConsoleTransport: print each message
memory:, memory:NAME                                MemoryTransport: a list, for tests
failover(URL URL ...)[?retry_period=60]             FailoverTransport: the next one when
                                                    the previous provably took nothing
```

Each backend is a class with ``from_url(url, **options)``, imported on first use, so a
missing optional dependency only matters to the URL that needs it and says which extra
to install. ``options`` are the backend's constructor keywords and win over the URL
(``open_transport("smtp://mail.example.com", password=secret)`` keeps a secret out of
the URL).
"""

from __future__ import annotations

import re
from typing import Any

from mailspool._backends import load_backend
from mailspool.errors import ConfigurationError
from mailspool.transports._common import redact
from mailspool.transports.base import Receipt, Transport
from mailspool.transports.failover_url import is_failover

__all__ = ["Receipt", "Transport", "open_transport"]

_BACKENDS = {
    "console": "mailspool.transports.console:ConsoleTransport",
    "failover": "mailspool.transports.failover:FailoverTransport",
    "file": "mailspool.transports.file:FileTransport",
    "memory": "mailspool.transports.memory:MemoryTransport",
    "ses": "mailspool.transports.ses:SESTransport",
    "smtp": "mailspool.transports.smtp:SMTPTransport",
    "smtps": "mailspool.transports.smtp:SMTPTransport",
}
_EXAMPLES = (
    "smtp://HOST",
    "smtps://HOST",
    "ses://REGION",
    "file://DIR",
    "console:",
    "memory:",
    "failover(URL URL ...)",
)
# scheme -> (what needs it, the extra to install, the top-level modules it provides)
_EXTRAS = {"ses": ("the SES transport", "aws", frozenset({"boto3", "botocore"}))}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def open_transport(url: str, **options: Any) -> Transport:
    """Open the transport a URL names; ``options`` go to the backend's constructor.

    An unknown scheme is a ``ConfigurationError`` naming the URL (password hidden) and
    the schemes known; a backend whose extra is not installed raises
    ``MissingDependency`` naming the extra.
    """
    match = _SCHEME.match(url)
    scheme = "failover" if is_failover(url) else match.group(1).lower() if match else ""
    if scheme not in _BACKENDS:
        raise ConfigurationError(
            f"unknown transport URL {redact(url)!r}: the known kinds are {', '.join(_EXAMPLES)}"
        )
    transport: Transport = _backend(scheme).from_url(url, **options)
    return transport


def _backend(scheme: str) -> Any:
    return load_backend(_BACKENDS, _EXTRAS, scheme)
