"""What each SES tenant gets (``MAILSPOOL_SES_TENANTS``): its configuration set, its
part of the rate, its daily cap and its suppression scope, read strictly.

The setting is a JSON object (or, from a framework's settings, a dict) mapping tenant
names to objects with any of ``configuration_set`` (an SES configuration set's name),
``max_rate`` (recipients per second, a finite number > 0), ``daily_cap`` (recipients
in 24 hours, a whole number >= 1) and ``suppression`` (``"account"``, the default: a
bounce or complaint stops everyone's mail to the address; ``"tenant"``: only this
tenant's)::

    {"shop-eu": {"configuration_set": "eu-events", "max_rate": 5, "daily_cap": 20000,
                 "suppression": "tenant"}}

A tenant's name or an option that is not one of these, or a value outside its rule,
refuses the whole setting (``SettingError`` naming it and the rule): a typo must not
send a tenant's mail without its limits.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["SCOPES", "TENANT_NAME", "TenantOptions", "parse_tenants", "tenant_scoped"]

#: A tenant's name, as ``Message.tenant`` takes it.
TENANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SET_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_OPTIONS = frozenset({"configuration_set", "max_rate", "daily_cap", "suppression"})
#: Where a tenant's bounces and complaints suppress an address.
SCOPES = ("account", "tenant")
#: At most this many tenants in the setting (each gets a limiter and a window).
MAX_TENANTS = 1000
#: The setting's text is read only up to this many characters (its JSON nests little).
MAX_TEXT = 256 * 1024


@dataclass(frozen=True, slots=True)
class TenantOptions:
    """One tenant's configuration set, rate (recipients a second) and daily cap."""

    configuration_set: str | None = None
    max_rate: float | None = None
    daily_cap: int | None = None
    suppression: str = "account"  # one of SCOPES


def parse_tenants(value: Any) -> Mapping[str, TenantOptions]:
    """The tenants' options from JSON text or a mapping; ValueError/TypeError if not."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError("too long")
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, Mapping) or len(value) > MAX_TENANTS:
        raise TypeError(value)
    parsed = {}
    for name, options in value.items():
        if not isinstance(name, str) or not TENANT_NAME.fullmatch(name):
            raise ValueError(name)
        parsed[name] = _options(options)
    return MappingProxyType(parsed)


def _options(options: Any) -> TenantOptions:
    if not isinstance(options, Mapping) or not set(options) <= _OPTIONS:
        raise ValueError(options)
    configuration_set = options.get("configuration_set")
    if configuration_set is not None and not (
        isinstance(configuration_set, str) and _SET_NAME.fullmatch(configuration_set)
    ):
        raise ValueError(configuration_set)
    rate, cap = options.get("max_rate"), options.get("daily_cap")
    if rate is not None and not (_number(rate) and rate > 0):
        raise ValueError(rate)
    if cap is not None and not (isinstance(cap, int) and not isinstance(cap, bool) and cap >= 1):
        raise ValueError(cap)
    scope = options.get("suppression", "account")
    if scope not in SCOPES:
        raise ValueError(scope)
    return TenantOptions(configuration_set, None if rate is None else float(rate), cap, scope)


def tenant_scoped(tenants: Mapping[str, TenantOptions]) -> frozenset[str]:
    """The tenants whose bounces and complaints suppress for themselves only."""
    return frozenset(name for name, options in tenants.items() if options.suppression == "tenant")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
