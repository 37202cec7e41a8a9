"""The failover chain's URL: ``failover(URL URL ...)[?retry_period=SECONDS]``.

The members are transport URLs in the order they are tried, separated by white space
(Symfony Mailer's ``failover(a b)``). A URL holds no space, so the split is exact; the
chain ends at its last ``)``, and only its own query may follow. Refused, each with a
``ConfigurationError`` that names the rule: an empty chain, a chain inside a chain, a
member listed twice, an unknown query parameter, a retry period that is not a number of
seconds from 0 to a day. A member's own scheme is checked when it is opened.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from mailspool.errors import ConfigurationError
from mailspool.transports._common import query_parameters

__all__ = [
    "DEFAULT_RETRY_PERIOD",
    "MAX_MEMBERS",
    "Chain",
    "format_chain",
    "is_failover",
    "member_label",
    "parse_chain",
]

#: Seconds a member that did not take an e-mail is skipped (Symfony's ``retry_period``).
DEFAULT_RETRY_PERIOD = 60.0
_MAX_RETRY_PERIOD = 86_400.0
#: More members than this is a mistake, not a configuration.
MAX_MEMBERS = 16
_OPENING = re.compile(r"\s*failover\(", re.IGNORECASE)
_PASSWORD = re.compile(r"(//[^:/@\s]*):[^@\s]*@")  # user:password@ in any member


@dataclass(frozen=True, slots=True)
class Chain:
    """A parsed chain: its member URLs in order and its retry period in seconds."""

    members: tuple[str, ...]
    retry_period: float = DEFAULT_RETRY_PERIOD


def is_failover(url: str) -> bool:
    """True when ``url`` is a failover chain (``failover(...)``)."""
    return _OPENING.match(url) is not None


def parse_chain(url: str) -> Chain:
    """The chain ``url`` names; a ``ConfigurationError`` saying which rule it breaks."""
    opening = _OPENING.match(url)
    if opening is None:
        raise ConfigurationError(f"{_shown(url)} is not a failover chain: failover(URL URL ...)")
    inner, closing, after = url[opening.end() :].rpartition(")")
    if not closing:
        raise ConfigurationError(f"failover chain {_shown(url)} has no closing ')'")
    if after and not after.startswith("?"):
        raise ConfigurationError(
            f"failover chain {_shown(url)}: only ?retry_period=SECONDS may follow its ')'"
        )
    members = tuple(inner.split())
    _check_members(url, members)
    options = query_parameters(_hidden(url), after[1:], ("retry_period",))
    period = options.get("retry_period")
    return Chain(members, DEFAULT_RETRY_PERIOD if period is None else _period(url, period))


def format_chain(chain: Chain) -> str:
    """The URL of ``chain`` (``parse_chain`` of it gives ``chain`` back)."""
    period = chain.retry_period
    query = "" if period == DEFAULT_RETRY_PERIOD else f"?retry_period={period!r}"
    return f"failover({' '.join(chain.members)}){query}"


def member_label(url: str) -> str:
    """A member's URL without user, password and query, as the ledger records it
    (``smtp://relay.example:587``, ``ses://eu-west-1``)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _check_members(url: str, members: tuple[str, ...]) -> None:
    if not members:
        raise ConfigurationError(
            f"failover chain {_shown(url)} is empty: name at least one transport, "
            "e.g. failover(ses://eu-west-1 smtp://relay.example:587)"
        )
    if len(members) > MAX_MEMBERS:
        raise ConfigurationError(
            f"failover chain {_shown(url)} has {len(members)} members; at most {MAX_MEMBERS}"
        )
    for position, member in enumerate(members, 1):
        if "failover(" in member.lower() or "(" in member or ")" in member:
            raise ConfigurationError(
                f"member {position} of failover chain {_shown(url)} is a chain itself "
                "or holds a parenthesis: failover chains do not nest"
            )
    labels = [member_label(member) for member in members]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ConfigurationError(
            f"failover chain {_shown(url)} names {', '.join(twice)} twice: "
            "each member must be a different transport"
        )


def _period(url: str, text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= _MAX_RETRY_PERIOD:  # also refuses nan
        raise ConfigurationError(
            f"retry_period of failover chain {_shown(url)} must be seconds from 0 to "
            f"{_MAX_RETRY_PERIOD:g}, not {text[:40]!r}"
        )
    return seconds


def _hidden(url: str) -> str:
    """The chain with every member's password replaced by ``***``."""
    return _PASSWORD.sub(r"\1:***@", url)


def _shown(url: str) -> str:
    """The chain, passwords hidden, shortened and quoted for a message."""
    hidden = _hidden(url)
    return repr(hidden if len(hidden) <= 300 else f"{hidden[:300]}...")
