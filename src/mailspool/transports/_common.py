"""What every backend shares: rendering with a known Message-ID, and URL checks.

``prepare`` decides the Message-ID once (the message's own header, else the caller's,
else a new one) and renders with it, so the id in the ``Receipt`` is always the one in
the bytes that left. URL helpers keep passwords out of every message they build.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

from mailspool.errors import ConfigurationError
from mailspool.message import Message
from mailspool.mime import new_message_id, render

__all__ = [
    "Outgoing",
    "check_options",
    "parse_bool",
    "prepare",
    "query_parameters",
    "redact",
    "split_url",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready to leave: the Message-ID it carries, its bytes, its envelope."""

    message_id: str
    data: bytes
    sender: str
    recipients: tuple[str, ...]


def prepare(message: Message, message_id: str | None = None, *, utf8: bool = False) -> Outgoing:
    """Render ``message``; the Message-ID is its own header, else ``message_id``, else new.
    ``utf8``: the receiver takes SMTPUTF8 (see ``mailspool.mime.render``)."""
    chosen = message.header("Message-ID") or message_id or new_message_id(message.sender)
    return Outgoing(
        message_id=chosen.strip(),
        data=render(message, message_id=chosen, utf8=utf8),
        sender=message.envelope_sender,
        recipients=message.envelope_recipients,
    )


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to show in errors and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.rsplit("@", 1)[-1]  # unparseable: drop everything a secret could be in
    if password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def split_url(url: str) -> SplitResult:
    """``urlsplit``, with a malformed URL (e.g. an unclosed ``[``) a ConfigurationError."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as err:
        raise ConfigurationError(f"malformed transport URL {redact(url)!r}: {err}") from err
    return parts


def query_parameters(url: str, query: str, accepted: Collection[str]) -> dict[str, str]:
    """The URL's ``?name=value`` pairs; an unknown or repeated name is a ConfigurationError."""
    found: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in accepted:
            raise ConfigurationError(
                f"unknown parameter {name!r} in transport URL {redact(url)!r}; "
                f"accepted: {', '.join(sorted(accepted))}"
            )
        if name in found:
            raise ConfigurationError(
                f"parameter {name!r} is given twice in transport URL {redact(url)!r}"
            )
        found[name] = value
    return found


def parse_bool(name: str, value: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off) as a bool."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, not {value!r}")


def check_options(constructor: Callable[..., Any], options: Mapping[str, object], url: str) -> None:
    """Refuse keyword options that ``constructor`` does not take, naming those it does."""
    accepted = [
        name
        for name, parameter in inspect.signature(constructor).parameters.items()
        if name != "self" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {', '.join(unknown)} for transport {redact(url)!r}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
