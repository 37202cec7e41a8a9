"""One settings lookup, in a documented order.

For every setting the first of these that gives a value wins:

1. an explicit argument (``Settings.load(store=...)``, a CLI flag);
2. framework settings passed in by the glue (Django's ``MAILSPOOL`` dict, Flask's
   ``app.config["MAILSPOOL_..."]``), as a mapping keyed by the setting's name;
3. the environment variable ``MAILSPOOL_<NAME>``;
4. the default below.

Nothing is read at import time: ``Settings.load()`` reads the environment when called.
A bad value raises ``ConfigurationError`` naming the variable and what it accepts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from mailspool.errors import ConfigurationError

__all__ = ["SETTINGS_HELP", "Settings", "data_dir"]

T = TypeVar("T")


def data_dir() -> Path:
    """Where the embedded default keeps its spool and outbox: ``$XDG_DATA_HOME/mailspool``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailspool"


def _default_store() -> str:
    return f"file://{data_dir() / 'spool'}"


def _default_fallback_store() -> str:
    return f"file://{data_dir() / 'fallback'}"


def _default_transport() -> str:
    return f"file://{data_dir() / 'outbox'}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting; see ``docs/configuration.md`` for each one's meaning."""

    store: str
    transport: str
    priority_transport: str
    emails_per_file: int
    max_rate: float | None
    concurrency: int
    max_attempts: int
    default_priority: str
    sender: str
    subject_marker: str
    marker_recipient: str
    on_error: str
    write_timeout: float
    write_attempts: int
    fallback_store: str
    sns_topics: frozenset[str]
    unsubscribe_url: str
    unsubscribe_secret: str
    unsubscribe_mailto: str
    soft_bounce_limit: int
    soft_bounce_days: float
    on_event: str
    rate_guard: str
    rate_sends: int

    @classmethod
    def load(
        cls,
        framework: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **explicit: Any,
    ) -> Settings:
        """The settings from arguments, framework settings, environment and defaults."""
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(explicit) - known) + sorted(set(framework or {}) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown mailspool setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )

        def lookup(name: str, parse: Callable[[str, str], T], default: Callable[[], T]) -> T:
            for value in (explicit.get(name), (framework or {}).get(name)):
                if value is not None:
                    return parse(name, value) if isinstance(value, str) else value
            raw = env.get(f"MAILSPOOL_{name.upper()}")
            if raw is not None and raw.strip():
                return parse(f"MAILSPOOL_{name.upper()}", raw.strip())
            return default()

        transport = lookup("transport", _text, _default_transport)
        return cls(
            store=lookup("store", _text, _default_store),
            transport=transport,
            priority_transport=lookup("priority_transport", _text, lambda: transport),
            emails_per_file=lookup("emails_per_file", _non_negative_int, lambda: 0),
            max_rate=lookup("max_rate", _optional_rate, lambda: None),
            concurrency=lookup("concurrency", _positive_int, lambda: 32),
            max_attempts=lookup("max_attempts", _positive_int, lambda: 5),
            default_priority=lookup("default_priority", _priority_word, lambda: "deferred"),
            sender=lookup("sender", _text, lambda: "mailspool <mailspool@localhost>"),
            subject_marker=lookup("subject_marker", _any_text, lambda: "[Non-priority!]"),
            marker_recipient=lookup("marker_recipient", _any_text, lambda: ""),
            on_error=lookup("on_error", _on_error_word, lambda: "write"),
            write_timeout=lookup("write_timeout", _positive_seconds, lambda: 2.0),
            write_attempts=lookup("write_attempts", _positive_int, lambda: 3),
            fallback_store=lookup("fallback_store", _text, _default_fallback_store),
            sns_topics=lookup("sns_topics", _names, frozenset),
            unsubscribe_url=lookup("unsubscribe_url", _any_text, str),
            unsubscribe_secret=lookup("unsubscribe_secret", _any_text, str),
            unsubscribe_mailto=lookup("unsubscribe_mailto", _any_text, str),
            soft_bounce_limit=lookup("soft_bounce_limit", _positive_int, lambda: 3),
            soft_bounce_days=lookup("soft_bounce_days", _positive_number, lambda: 7.0),
            on_event=lookup("on_event", _any_text, str),
            rate_guard=lookup("rate_guard", _rate_guard_word, lambda: "off"),
            rate_sends=lookup("rate_sends", _positive_int, lambda: 1000),
        )


def _text(name: str, value: str) -> str:
    if not value.strip():
        raise ConfigurationError(f"{name} must not be empty")
    return value


def _any_text(name: str, value: str) -> str:
    return value


def _positive_number(name: str, value: str, unit: str = "") -> float:
    """A number above 0; ``unit`` (`` seconds``) only words the error."""
    try:
        number = float(value)
    except ValueError:
        kind = f"a number of{unit}" if unit else "a number"
        raise ConfigurationError(f"{name} must be {kind}, not {value!r}") from None
    if number <= 0:
        raise ConfigurationError(f"{name} must be more than 0{unit}, not {value!r}")
    return number


def _rate_guard_word(name: str, value: str) -> str:
    word = value.lower()
    if word not in ("off", "warn", "hold"):
        raise ConfigurationError(f"{name} must be 'off', 'warn' or 'hold', not {value!r}")
    return word


def _names(name: str, value: str) -> frozenset[str]:
    """A comma-separated list (of SNS topic ARNs, say)."""
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _non_negative_int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise ConfigurationError(f"{name} must be 0 or more, not {number}")
    return number


def _positive_int(name: str, value: str) -> int:
    number = _non_negative_int(name, value)
    if number == 0:
        raise ConfigurationError(f"{name} must be at least 1")
    return number


def _positive_seconds(name: str, value: str) -> float:
    return _positive_number(name, value, " seconds")


def _optional_rate(name: str, value: str) -> float | None:
    if value.lower() in ("", "none", "unlimited"):
        return None
    try:
        rate = float(value)
    except ValueError:
        raise ConfigurationError(
            f"{name} must be e-mails per second (a number), not {value!r}"
        ) from None
    if rate <= 0:
        raise ConfigurationError(f"{name} must be more than 0 (or 'unlimited'), not {value!r}")
    return rate


def _priority_word(name: str, value: str) -> str:
    word = value.lower()
    if word not in ("now", "deferred"):
        raise ConfigurationError(f"{name} must be 'now' or 'deferred', not {value!r}")
    return word


def _on_error_word(name: str, value: str) -> str:
    word = value.lower()
    if word not in ("write", "discard"):
        raise ConfigurationError(f"{name} must be 'write' or 'discard', not {value!r}")
    return word


#: Each setting's environment variable and one line on what it does (docs and --help).
SETTINGS_HELP: dict[str, str] = {
    "MAILSPOOL_STORE": "where batches are written: file://DIR or s3://BUCKET/PREFIX "
    "(default: file://$XDG_DATA_HOME/mailspool/spool)",
    "MAILSPOOL_TRANSPORT": "how the worker delivers: smtp://, smtps://, ses://REGION, file://DIR, "
    "console:, memory: (default: file://$XDG_DATA_HOME/mailspool/outbox)",
    "MAILSPOOL_PRIORITY_TRANSPORT": "how priority e-mail is sent at once (default: MAILSPOOL_TRANSPORT)",
    "MAILSPOOL_EMAILS_PER_FILE": "split a request's e-mails into files of at most N (the article's "
    "EMAILS_PER_FILE; default 0: one file per meta group)",
    "MAILSPOOL_MAX_RATE": "e-mails per second, counting recipients as SES does (default: unlimited; "
    "with SES, the account's MaxSendRate)",
    "MAILSPOOL_CONCURRENCY": "e-mails in flight at once in one worker, one SMTP connection each (default 32)",
    "MAILSPOOL_MAX_ATTEMPTS": "attempts for a transient failure before an e-mail fails (default 5)",
    "MAILSPOOL_DEFAULT_PRIORITY": "'now' or 'deferred' when nothing marks an e-mail (default deferred)",
    "MAILSPOOL_SENDER": "From when an e-mail has none (default: mailspool <mailspool@localhost>)",
    "MAILSPOOL_SUBJECT_MARKER": "a subject prefix that marks an e-mail deferred, removed before "
    "sending (default '[Non-priority!]'; empty turns it off)",
    "MAILSPOOL_MARKER_RECIPIENT": "an address that marks an e-mail deferred when among its "
    "recipients, removed before sending (default: none)",
    "MAILSPOOL_ON_ERROR": "what a request scope does with its e-mails when the request raised: "
    "'write' (default) or 'discard'",
    "MAILSPOOL_WRITE_TIMEOUT": "seconds a request may spend writing its batches to the store, "
    "retries included, before they go to the fallback store (default 2)",
    "MAILSPOOL_WRITE_ATTEMPTS": "attempts at the store within MAILSPOOL_WRITE_TIMEOUT (default 3)",
    "MAILSPOOL_FALLBACK_STORE": "where batches go when the store fails; `mailspool worker` moves "
    "them back (default: file://$XDG_DATA_HOME/mailspool/fallback)",
    "MAILSPOOL_SERVE_TOKEN": "the token `mailspool serve` asks for on every page but the public "
    "endpoints; required to listen on a non-loopback address (default: none)",
    "MAILSPOOL_SNS_TOPICS": "SNS topic ARNs (comma-separated) whose SES events POST /events/ses "
    "accepts (default: none, and the endpoint answers 404)",
    "MAILSPOOL_UNSUBSCRIBE_URL": "https:// URL of the one-click unsubscribe endpoint; with "
    "MAILSPOOL_UNSUBSCRIBE_SECRET, deferred e-mails carry List-Unsubscribe (default: none)",
    "MAILSPOOL_UNSUBSCRIBE_SECRET": "the key (16 bytes or more) that signs unsubscribe tokens",
    "MAILSPOOL_UNSUBSCRIBE_MAILTO": "an address offered beside the URL in List-Unsubscribe "
    "(default: none)",
    "MAILSPOOL_SOFT_BOUNCE_LIMIT": "soft bounces within MAILSPOOL_SOFT_BOUNCE_DAYS that "
    "suppress an address (default 3)",
    "MAILSPOOL_SOFT_BOUNCE_DAYS": "the window in which soft bounces are counted (default 7)",
    "MAILSPOOL_ON_EVENT": "package.module:function called once per SES event (default: none)",
    "MAILSPOOL_RATE_GUARD": "'warn' (log) or 'hold' (keep deferred mail queued) while the "
    "bounce or complaint rate is past SES's review level; default 'off'",
    "MAILSPOOL_RATE_SENDS": "the last N sends the bounce and complaint rates are counted "
    "over (default 1000)",
}
