"""The transports shared by everything in a process, one per URL: a web process sends
priority mail over the same SMTP connections request after request (the article's third
cause of slow requests is a new connection per e-mail). Each is opened on first use and
closed at exit (``shared_transport(url)``; ``close_all()``).

An SES transport with tenants (``MAILSPOOL_SES_TENANTS``: each tenant's configuration
set) is shared per URL and tenants (``shared_tenant_transport``): the e-mail carries its
tenant, the transport picks its configuration set, as the worker's does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from urllib.parse import urlsplit

import orjson

from mailspool._backends import OpenBackends
from mailspool.tenant_options import TenantOptions, parse_tenants
from mailspool.transports import open_transport
from mailspool.transports.base import Transport

__all__ = ["close_all", "shared_tenant_transport", "shared_transport"]

_open: OpenBackends[Transport] = OpenBackends(open_transport)
shared_transport = _open.get


def _open_with_tenants(key: str) -> Transport:
    url, tenants = orjson.loads(key)
    return open_transport(url, tenants=parse_tenants(tenants))


_tenanted: OpenBackends[Transport] = OpenBackends(_open_with_tenants)


def shared_tenant_transport(url: str, tenants: Mapping[str, TenantOptions]) -> Transport:
    """The transport shared for ``url``, knowing each SES tenant's configuration set
    (a URL other than ``ses://``, or no tenants: ``shared_transport(url)``)."""
    if not tenants or urlsplit(url).scheme.lower() != "ses":
        return shared_transport(url)
    options = {name: asdict(option) for name, option in sorted(tenants.items())}
    return _tenanted.get(orjson.dumps([url, options]).decode())


def close_all() -> None:
    """Close every shared transport (at exit, or in tests)."""
    _open.close_all()
    _tenanted.close_all()
